"""Fuzzing templates and the values put into them: a template the agency file accepts
renders for every call, and nothing a call carries can change what the template says."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from callerloop.core.agency_config import TEMPLATE_FIELDS, AgencyConfigError
from callerloop.messaging.messages import MessageContext, render_message
from tests.factories import make_agency

placeholder = st.sampled_from(sorted(TEMPLATE_FIELDS)).map(lambda name: "{" + name + "}")
# Templates as an agency might write them, mistakes included: stray and doubled braces,
# unknown names, attribute and index lookups, conversions and format specs.
template_piece = (
    st.text(max_size=12)
    | placeholder
    | st.sampled_from(
        [
            "{",
            "}",
            "{{",
            "}}",
            "{case_number!r}",
            "{case_number:d}",
            "{case_number:>{agency_name}}",
            "{case_number.upper}",
            "{agency_name[0]}",
            "{unknown}",
            "{}",
            "{0}",
        ]
    )
)
templates = st.lists(template_piece, max_size=8).map("".join)
# What a call can carry into a text: any case number a CAD sends, braces included.
values = st.text(max_size=40)
SLOT = "\x00slot\x00"


@settings(max_examples=300, deadline=None)
@given(templates, values, values)
@example("Case {case_number:d} closed", "C-1", "")  # accepted once, then failed every send
def test_an_accepted_template_renders_and_a_refused_one_says_where(
    template: str, case_number: str, url: str
) -> None:
    refusal: str | None = None
    try:
        agency = make_agency(templates={"en": {"cleared": template}})
    except AgencyConfigError as error:
        refusal = str(error)
    if refusal is not None:
        assert "templates.en.cleared" in refusal, refusal
        return
    text = render_message(agency, "cleared", "en", MessageContext(case_number, url, url))
    assert isinstance(text, str)


@settings(max_examples=200, deadline=None)
@given(values)
def test_a_case_number_is_put_in_as_it_is_never_interpreted(case_number: str) -> None:
    agency = make_agency()
    for language in agency.agency.languages:
        text = render_message(agency, "confirmation", language, MessageContext(case_number))
        marked = render_message(agency, "confirmation", language, MessageContext(SLOT))
        assert text == marked.replace(SLOT, case_number)
