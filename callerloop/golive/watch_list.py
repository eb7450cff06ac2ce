"""Words that make a call type worth a second look before it is texted, in the languages
callerloop speaks. Not a rule: a call type that would be texted and matches one goes on the
dry run's review list, for a supervisor to exclude (`[eligibility] excluded_call_types`) or
to keep knowingly. The built-in sensitive list is the rule; this is the net under it."""

from __future__ import annotations

import re

from workflows.policy import normalise_call_type

# Word starts, matched on the call type as the policy normalises it (upper case, accents
# kept, punctuation folded to spaces), so 'ASSAULT' also finds 'ASSAULTED' and 'ASSAULT/W'.
WATCH_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "ABDUCT", "ABUSE", "ARSON", "ASSAULT", "BATTERY", "BODY", "BOMB", "CHILD", "DEATH",
        "DOA", "DOMESTIC", "DROWN", "DV", "ELDER", "EXPLOIT", "FIREARM", "GUN", "HARASS",
        "HOSTAGE", "IPV", "JUVENILE", "KIDNAP", "MENTAL", "MINOR", "MISSING", "OVERDOSE",
        "PROWLER", "PEEPING", "RAPE", "RUNAWAY", "SEX", "SHOOT", "SHOT", "STAB", "STALK",
        "SUICID", "THREAT", "TRAFFICK", "VIOLEN", "WEAPON", "WELFARE",
    ),
    "es": (
        "ABUSO", "ACOSO", "AGRESI", "AMENAZA", "ANCIAN", "APUÑAL", "ARMA", "ASALTO",
        "DESAPARECID", "DISPARO", "FUGAD", "MALTRATO", "MENOR", "NIÑ", "PISTOLA",
        "SECUESTRO", "SEXUAL", "SOBREDOSIS", "SUICID", "VIOLACI", "VIOLENCIA",
    ),
    "fr": (
        "AGRESSION", "ARME", "BIEN ÊTRE", "COUTEAU", "DISPARU", "ENFANT", "ENLÈVEMENT",
        "FUGUE", "HARCÈLEMENT", "MALTRAITANCE", "MENACE", "MINEUR", "POIGNARD", "SEXUEL",
        "SURDOSE", "SUICID", "VIOL", "VOIES DE FAIT",
    ),
}  # fmt: skip

# Short words that are whole words only ('DV' is not 'DVD', French 'VIOL' not 'VIOLATION').
WHOLE_WORDS = frozenset({"ARME", "BODY", "DOA", "DV", "IPV", "MENOR", "MINOR", "SHOT", "VIOL"})


def _pattern(word: str) -> re.Pattern[str]:
    end = r"\b" if word in WHOLE_WORDS else ""
    return re.compile(rf"\b{re.escape(word)}{end}")


_PATTERNS = tuple((word, _pattern(word)) for words in WATCH_WORDS.values() for word in words)


def watch_words_in(call_type: str) -> list[str]:
    """The watch-list words the call type contains, in the list's order."""
    normalised = normalise_call_type(call_type)
    return sorted({word for word, pattern in _PATTERNS if pattern.search(normalised)})
