"""Words that make a call type worth a second look before it is texted, in the languages
callerloop speaks (each language's `[watch_list]`, callerloop/languages/<code>.toml). Not a
rule: a call type that would be texted and matches one goes on the dry run's review list,
for a supervisor to exclude (`[eligibility] excluded_call_types`) or to keep knowingly.
The built-in sensitive list is the rule; this is the net under it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from callerloop.languages import shipped_languages
from workflows.policy import normalise_call_type

# Word starts, matched on the call type as the policy normalises it (upper case, accents
# kept, punctuation folded to spaces), so 'ASSAULT' also finds 'ASSAULTED' and 'ASSAULT/W';
# a whole word ('DV' is not 'DVD', French 'VIOL' not 'VIOLATION') where the language says so.
WATCH_WORDS: Mapping[str, tuple[str, ...]] = {
    code: language.data.watch_list.words for code, language in shipped_languages().items()
}
WHOLE_WORDS = frozenset(
    word
    for language in shipped_languages().values()
    for word in language.data.watch_list.whole_words
)
# Languages whose words are found anywhere in a call type (Chinese joins its words, Arabic
# its articles to them), on the call type in any script: the policy's normalising keeps
# Latin letters only.
ANYWHERE = frozenset(
    code
    for code, language in shipped_languages().items()
    if language.data.watch_list.match == "anywhere"
)


def _pattern(word: str, anywhere: bool) -> re.Pattern[str]:
    if anywhere:
        return re.compile(re.escape(word.upper()))
    end = r"\b" if word in WHOLE_WORDS else ""
    return re.compile(rf"\b{re.escape(word)}{end}")


_PATTERNS = tuple(
    (word, code in ANYWHERE, _pattern(word, code in ANYWHERE))
    for code, words in WATCH_WORDS.items()
    for word in words
)


def watch_words_in(call_type: str) -> list[str]:
    """The watch-list words the call type contains, in the list's order."""
    normalised = normalise_call_type(call_type)
    any_script = " ".join(re.findall(r"[^\W_]+", call_type.upper()))
    return sorted(
        {
            word
            for word, anywhere, pattern in _PATTERNS
            if pattern.search(any_script if anywhere else normalised)
        }
    )
