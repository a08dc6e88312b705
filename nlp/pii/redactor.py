"""PII redaction of transcripts: card numbers, phone numbers, e-mail addresses, account / ID
numbers and street addresses, written ("4111 1111 1111 1111", "john.smith@example.com") or
spoken ("four one one one ...", "double five", "oh" for zero, "john dot smith at example dot
com"), as ASR engines write either.

How it works, in one pass over a text:

1. A cheap precheck: no digit, no number word, no "@" / "dot" -> the text is returned as is.
2. Digit runs: digits and spoken numbers ("four", "double five", "twenty one", "eight hundred")
   joined only by separators (spaces, "-", ",", ".", "(", ")", "+", or the words "dash",
   "hyphen", "space") become one digit string with the character span it came from.
3. A run (or a part of it, word-aligned) of 13-19 digits that passes the Luhn check is a card.
   What is left of a run: 7+ digits are a phone number when `phonenumbers` says it is a
   possible one (or the words before it speak of a phone) and an account / ID number
   otherwise; 4+ digits after words like "account", "member ID", "PIN", "order number" are
   an account number; 1-6 digits followed by a street name and suffix ("Main Street") are
   an address.
4. E-mail addresses (written and spoken) and alphanumeric IDs (letters and 6+ digits:
   "AB1234567") by regular expression.

Spans are character offsets into the text given to `redact`; overlapping spans are merged
(the stronger kind wins: card > e-mail > phone > address > account).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal, Sequence, TypeVar

import phonenumbers

Mode = Literal["off", "mask", "remove"]
MODES: tuple[str, ...] = ("off", "mask", "remove")
KINDS = ("CARD", "EMAIL", "PHONE", "ADDRESS", "ACCOUNT")
# A number cut short (live interim text ends mid-utterance): not yet any kind, masked anyway.
PARTIAL_NUMBER = "NUMBER"
PARTIAL_MIN_DIGITS = 3
MASKS = {kind: f"[{kind}]" for kind in (*KINDS, PARTIAL_NUMBER)}
_PRIORITY = {kind: i for i, kind in enumerate((*KINDS, PARTIAL_NUMBER))}  # lower wins

UNITS = {"zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
         "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
REPEATS = {"double": 2, "triple": 3, "treble": 3}
_OH = {"oh", "o"}
_SEP_WORDS = {"dash", "hyphen", "space"}
_SEP_PUNCT = {"-", "\u2013", "\u2014", ",", ".", "(", ")", "+"}
_MAX_SEPS = 2  # separator tokens allowed between two parts of one run

_NUMBER_WORDS = "|".join(sorted({*UNITS, *TEENS, *TENS}, key=len, reverse=True))

_TOKEN = re.compile(r"\d+|[A-Za-z]+(?:'[A-Za-z]+)?|[^\sA-Za-z\d]")

# Words just before a run that make 4+ digits an account / ID number: strong words alone,
# weak ones ("order", "card") only as "order number", "card no.", "case ID", ...
_ACCOUNT_CONTEXT = re.compile(
    r"(?:\b(?:account|acct|a/c|member(?:ship)?|policy|reference|ref|confirmation|ticket|pin|passcode|password|ssn|"
    r"social security|routing|tracking|invoice|licen[cs]e|passport|iban|sort code|claim|serial|booking|subscriber|"
    r"registration|verification|cvv|cvc)|"
    r"\b(?:order|card|case|customer|security|employee|patient|student|contract|user|client|id|i\.\s?d\.?)"
    r"\s*(?:number|no\.?|num|#|id|i\.\s?d\.?|code))\b\W*(?:\w+\W+){0,5}$",
    re.IGNORECASE)
# Amounts: "forty nine ninety nine dollars", "$ 1200".
_AMOUNT_AFTER = re.compile(r"\s*(?:dollars?|bucks|cents|pounds|euros?|percent|%|gigs?|gb|mb|megs?|minutes|hours|days)\b", re.IGNORECASE)
_PHONE_CONTEXT = re.compile(r"\b(?:phone|telephone|cell|mobile|landline|call(?:ed)? me|reach me|text me|"
                            r"callback|call back|fax|extension|contact number|number to call)\b\W*(?:\w+\W+){0,5}$", re.IGNORECASE)
_CONTEXT_CHARS = 48

_STREET_SUFFIX = (r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|ter|"
                  r"circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|crescent|close|row|alley|plaza|"
                  r"heights|hill|grove|gardens|park|pike|loop")
_ADDRESS_TAIL = re.compile(
    rf"(?P<name>(?:\s+[A-Za-z0-9][A-Za-z0-9'.]*){{1,3}}?)\s+(?P<suffix>{_STREET_SUFFIX})\b\.?"
    r"(?P<unit>,?\s+(?:apartment|apt|suite|ste|unit|flat|room|floor|#)\.?\s*(?:number\s+)?#?"
    rf"(?:[A-Za-z]?\d+[A-Za-z]?|[A-Za-z]\b|(?:{_NUMBER_WORDS})(?:[\s-]+(?:{_NUMBER_WORDS}))*))?"
    r"(?P<city>,?\s+(?:[A-Z][a-z]+,?\s+){1,3}?(?:[A-Z]{2}\s+)?\d{5}(?:-\d{4})?)?",
    re.IGNORECASE)
# Words that are not street names ("two more road bikes", "one way street" is handled by capitals).
_NOT_STREET_NAME = {
    "a", "an", "the", "more", "of", "to", "for", "in", "on", "at", "my", "your", "our", "their", "his", "her",
    "and", "or", "times", "time", "days", "day", "weeks", "week", "months", "month", "years", "year", "hours",
    "minutes", "items", "units", "is", "was", "are", "were", "be", "it", "that", "this", "these", "those", "by",
    "from", "with", "new", "way", "different", "other", "same", "lanes", "streets", "roads", "blocks", "miles",
    "with", "without", "dollars", "bucks", "cents", "percent", "point", "people", "kids", "cars",
}

_TLD = r"(?:com|net|org|edu|gov|mil|io|co|uk|us|ca|de|fr|es|it|nl|au|in|info|biz|me|ai|app|dev|mail|email|online|xyz)"
_PRECHECK = re.compile(rf"\d|@|\b(?:{_NUMBER_WORDS}|dot)\b|\bat\s+[\w-]+\.\w|mail|\.\s*{_TLD}\b", re.IGNORECASE)
_EMAIL_WORD = r"[A-Za-z0-9]+"
_EMAIL_DIGIT_WORDS = rf"(?:{_NUMBER_WORDS}|double|triple)"
_EMAIL_SEP = r"(?:[._+-]|\s+(?:dot|period|point|underscore|under\s+score|dash|hyphen|plus)\s+)"
_EMAIL_LOCAL = rf"{_EMAIL_WORD}(?:{_EMAIL_SEP}{_EMAIL_WORD}|\s+{_EMAIL_DIGIT_WORDS}\b)*"
_EMAIL_DOT = r"(?:\s*\.\s*|\s+dot\s+)"
_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9._%+-]){_EMAIL_LOCAL}(?:\s*@\s*|\s+at\s+)"
    rf"{_EMAIL_WORD}(?:(?:[.-]|\s+(?:dot|dash|hyphen)\s+){_EMAIL_WORD})*?{_EMAIL_DOT}{_TLD}\b(?:{_EMAIL_DOT}(?:uk|au|nz|in|jp|za|br)\b)?"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    re.IGNORECASE)
_EMAIL_PRECHECK = re.compile(r"@|\bat\b|mail", re.IGNORECASE)
# After "my email is": whatever chain of words ends in a top-level domain, however the ASR
# engine mangled the "at" and "dot"s ("john .miss .example .com").
_EMAIL_AFTER_CONTEXT = re.compile(
    rf"\be-?mail(?:\s+address)?(?:\s+(?:is|was|it's|it is|should be)[\s:,]+|\s*:\s*)"
    rf"(?P<addr>{_EMAIL_WORD}(?:(?:\s*[.@_-]\s*|\s+(?:dot|at|underscore|dash)\s+|\s+){_EMAIL_WORD}){{0,7}}?"
    rf"{_EMAIL_DOT}{_TLD})\b", re.IGNORECASE)
_ALNUM_ID = re.compile(r"(?<![\w-])(?=[A-Za-z0-9-]*[A-Za-z])(?=(?:[A-Za-z-]*\d){6})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])")


@dataclass(frozen=True)
class RedactedText:
    """A redacted text and what was redacted: (kind, start, end) in the text given to `redact`."""

    text: str
    spans: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass
class _Part:
    digits: str
    start: int
    end: int
    oh: bool = False  # a lone "oh"/"o": zero only inside a run
    after_stop: bool = False  # a full stop (". ") lies between this part and the one before


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _adjacent(text: str, a: int, b: int) -> bool:
    """Nothing but spaces between offsets a and b."""
    return not text[a:b].strip()


def _digit_parts(text: str, toks: list[tuple[str, int, int]]) -> list[list[_Part]]:
    """Runs of digits and spoken numbers joined by separators."""
    runs: list[list[_Part]] = []
    run: list[_Part] = []
    seps, stop = 0, False
    i, n = 0, len(toks)
    while i < n:
        part, nxt = _part_at(text, toks, i)
        if part is not None:
            part.after_stop = stop and bool(run)
            run.append(part)
            seps, stop = 0, False
            i = nxt
            continue
        tok, low = toks[i][0], toks[i][0].lower()
        if run and (tok in _SEP_PUNCT or low in _SEP_WORDS) and seps < _MAX_SEPS:
            if tok == "." and text[toks[i][2]:toks[i][2] + 1].isspace():
                stop = True
            seps += 1
            i += 1
            continue
        if tok == "(" or tok == "+":  # "(212) 555 ..." / "+44 ...": the run starts after it
            i += 1
            continue
        if run:
            runs.append(run)
        run, seps, stop = [], 0, False
        i += 1
    if run:
        runs.append(run)
    out = []
    for run in runs:
        # "Oh, five five five ..." : an interjection, not a zero
        while run and run[0].oh and (text[run[0].start].isupper() or text[run[0].end:run[0].end + 1] in (",", "!", ".")):
            run = run[1:]
        if run:
            out.append(run)
    return out


def _word(toks, i) -> str:
    return toks[i][0].lower() if i < len(toks) else ""


def _part_at(text: str, toks: list[tuple[str, int, int]], i: int) -> tuple[_Part | None, int]:
    tok, start, end = toks[i]
    if tok[0].isdigit():
        # "5th", "12B", "mp3": part of a word, not a number (alphanumeric IDs have their own rule)
        if (end < len(text) and text[end].isalpha()) or (start > 0 and text[start - 1].isalpha()):
            return None, i + 1
        return _Part(tok, start, end), i + 1
    low = tok.lower()
    if low in REPEATS:
        j = i + 1
        if j < len(toks) and _adjacent(text, end, toks[j][1]):
            w = toks[j][0]
            if w.lower() in UNITS:
                return _Part(str(UNITS[w.lower()]) * REPEATS[low], start, toks[j][2]), j + 1
            if w.isdigit() and len(w) == 1:
                return _Part(w * REPEATS[low], start, toks[j][2]), j + 1
        return None, i + 1
    if low in TENS:
        j = i + 1
        if j + 1 < len(toks) and toks[j][0] == "-" and toks[j + 1][0].lower() in UNITS and toks[j + 1][0].lower() not in _OH \
                and UNITS[toks[j + 1][0].lower()] > 0:
            j += 1  # "twenty-one"
        if j < len(toks) and toks[j][0].lower() in UNITS and toks[j][0].lower() not in _OH and UNITS[toks[j][0].lower()] > 0:
            return _Part(str(TENS[low] + UNITS[toks[j][0].lower()]), start, toks[j][2]), j + 1
        return _Part(str(TENS[low]), start, end), i + 1
    if low in TEENS:
        return _Part(str(TEENS[low]), start, end), i + 1
    if low in UNITS:
        d = UNITS[low]
        if _word(toks, i + 1) == "hundred" and d > 0:
            j = i + 2
            if _word(toks, j) == "and":
                j += 1
            rest, k = _part_at(text, toks, j) if j < len(toks) else (None, j)
            if rest is not None and not rest.oh and len(rest.digits) <= 2 and _word(toks, j) not in REPEATS:
                return _Part(f"{d}{int(rest.digits):02d}", start, rest.end), k
            return _Part(f"{d}00", start, toks[i + 1][2]), i + 2
        return _Part(str(d), start, end, oh=low in _OH), i + 1
    return None, i + 1


def _context_before(text: str, start: int) -> str:
    return text[max(0, start - _CONTEXT_CHARS):start]


def _phone_possible(digits: str, plus: bool) -> bool:
    try:
        num = phonenumbers.parse("+" + digits if plus else digits, None if plus else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(num)


class PiiRedactor:
    """`redact(text)` -> RedactedText; `mode` is off (nothing changes), mask ([CARD], ...) or remove."""

    def __init__(self, mode: Mode = "mask"):
        if mode not in MODES:
            raise ValueError(f"PII redaction mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode

    # ---- detection -------------------------------------------------------------------

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """The PII spans of `text` (kind, start, end), sorted and not overlapping."""
        if not text or not _PRECHECK.search(text):
            return []
        spans: list[tuple[str, int, int]] = []
        if _EMAIL_PRECHECK.search(text):
            spans.extend(("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text))
            spans.extend(("EMAIL", m.start("addr"), m.end("addr")) for m in _EMAIL_AFTER_CONTEXT.finditer(text))
        for m in _ALNUM_ID.finditer(text):
            spans.append(("ACCOUNT", m.start(), m.end()))
        for run in _digit_parts(text, _tokens(text)):
            for kind, start, end in self._classify(text, run):
                while start > 0 and text[start - 1] in "(+":  # "(212) 555 0147", "+44 20 ..."
                    start -= 1
                spans.append((kind, start, end))
        return _merge(spans)

    def _classify(self, text: str, run: list[_Part]) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        rest: list[list[_Part]] = []
        i, seg_start = 0, 0
        while i < len(run):
            card = _card_at(run, i)
            if card is not None:
                if seg_start < i:
                    rest.append(run[seg_start:i])
                out.append(("CARD", run[i].start, run[card].end))
                i = seg_start = card + 1
            else:
                i += 1
        if seg_start < len(run):
            rest.append(run[seg_start:])
        for seg in rest:
            # "... 6798 382. 1 800 679 0657": one number per sentence when each sentence's
            # is one; "four six eight. six five five. two zero four five": one number
            pieces = _split_at_stops(seg)
            kinds = [self._number_kind(text, piece) for piece in pieces] if len(pieces) > 1 else [None]
            if all(kinds):
                out.extend(kinds)
            else:
                kind_span = self._number_kind(text, seg)
                if kind_span is not None:
                    out.append(kind_span)
        return out

    def _number_kind(self, text: str, seg: list[_Part]) -> tuple[str, int, int] | None:
        digits = "".join(p.digits for p in seg)
        start, end = seg[0].start, seg[-1].end
        n = len(digits)
        before = _context_before(text, start)
        if n <= 6:
            m = _ADDRESS_TAIL.match(text, end)
            if m is not None and self._street_name_ok(text, seg, m):
                return ("ADDRESS", start, m.end())
        if n >= 7:
            plus = text[max(0, start - 2):start].strip().endswith("+")
            if _ACCOUNT_CONTEXT.search(before):
                return ("ACCOUNT", start, end)
            if _PHONE_CONTEXT.search(before) and n <= 15:
                return ("PHONE", start, end)
            if _phone_possible(digits, plus) or (n in (10, 11) and _phone_possible(digits, False)):
                return ("PHONE", start, end)
            return ("ACCOUNT", start, end)
        if n >= 4 and _ACCOUNT_CONTEXT.search(before) and not _AMOUNT_AFTER.match(text, end) \
                and not before.rstrip().endswith("$"):
            return ("ACCOUNT", start, end)
        return None

    @staticmethod
    def _street_name_ok(text: str, seg: list[_Part], m: re.Match) -> bool:
        words = m.group("name").split()
        if any(w.lower().strip(".") in _NOT_STREET_NAME for w in words):
            return False
        spoken_number = not text[seg[0].start].isdigit()
        if spoken_number and len("".join(p.digits for p in seg)) == 1:
            # "one way street", "two lane road": a lone spoken digit needs a capitalised name
            return all(w[0].isupper() or w[0].isdigit() for w in words)
        return True

    # ---- redaction -------------------------------------------------------------------

    def redact(self, text: str) -> RedactedText:
        if self.mode == "off":
            return RedactedText(text, [])
        spans = self.find(text)
        if not spans:
            return RedactedText(text, [])
        return RedactedText(self.apply(text, spans), spans)

    def redact_partial(self, text: str) -> RedactedText:
        """`redact` for text that may stop in the middle of a number (live interim text: "my
        card is four one one one two" is no card yet, but its digits must not be shown):
        every run of PARTIAL_MIN_DIGITS or more digits, written or spoken, that the full rules
        do not (yet) call PII is masked as [NUMBER] as well."""
        if self.mode == "off" or not text:
            return RedactedText(text, [])
        spans = self.find(text)
        if _PRECHECK.search(text):
            for run in _digit_parts(text, _tokens(text)):
                if len("".join(p.digits for p in run)) >= PARTIAL_MIN_DIGITS:
                    spans.append((PARTIAL_NUMBER, run[0].start, run[-1].end))
        spans = _merge(spans)
        return RedactedText(self.apply(text, spans) if spans else text, spans)

    def apply(self, text: str, spans: Sequence[tuple[str, int, int]]) -> str:
        """`text` with the spans replaced by their masks (or removed)."""
        pieces, pos = [], 0
        for kind, start, end in spans:
            pieces.append(text[pos:start])
            pieces.append(MASKS[kind] if self.mode == "mask" else "")
            pos = end
        pieces.append(text[pos:])
        out = "".join(pieces)
        if self.mode == "remove":
            out = re.sub(r"[ \t]{2,}", " ", out)
            out = re.sub(r" +([,.!?;:])", r"\1", out).strip()
        return out


def _card_at(run: list[_Part], i: int) -> int | None:
    """Index of the last part of a Luhn-valid 13-19 digit card number starting at part i.
    A number that ends where the run (or its sentence) ends is preferred, then the longest;
    one that crosses a full stop must end at one."""
    valid: list[tuple[bool, int, int]] = []
    total, j = 0, i
    while j < len(run) and total < 19:
        total += len(run[j].digits)
        at_end = j + 1 == len(run) or run[j + 1].after_stop
        crosses = any(p.after_stop for p in run[i + 1:j + 1])
        if 13 <= total <= 19 and (at_end or not crosses):
            digits = "".join(p.digits for p in run[i:j + 1])
            if luhn_valid(digits) and digits.strip("0"):
                valid.append((at_end, total, j))
        j += 1
    if not valid:
        return None
    return max(valid)[2]


def _split_at_stops(seg: list[_Part]) -> list[list[_Part]]:
    out: list[list[_Part]] = []
    for p in seg:
        if not out or p.after_stop:
            out.append([])
        out[-1].append(p)
    return out


def _merge(spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    out: list[list] = []
    for kind, start, end in sorted(spans, key=lambda s: (s[1], -s[2])):
        if out and start < out[-1][2]:
            last = out[-1]
            last[2] = max(last[2], end)
            if _PRIORITY[kind] < _PRIORITY[last[0]]:
                last[0] = kind
        else:
            out.append([kind, start, end])
    return [(k, s, e) for k, s, e in out]


W = TypeVar("W")


@dataclass(frozen=True)
class TimedSpan:
    """Where redacted PII was said: the times of the first and last word it touched."""

    kind: str
    start: float
    end: float


def redact_words(words: Sequence[W], redactor: PiiRedactor) -> list[W]:
    """Timed words (any dataclass with text, start, end) with the PII redacted across word
    boundaries: the words of a span become one word (the mask, with whatever of the first and
    last word lay outside the span) spanning their times; in `remove` mode they are dropped."""
    return redact_timed_words(words, redactor)[0]


def redact_timed_words(words: Sequence[W], redactor: PiiRedactor) -> tuple[list[W], list[TimedSpan]]:
    """`redact_words`, and the times of what was redacted (one span per group of words a
    redaction touched, kind of its first span): what to silence in the recording."""
    if redactor.mode == "off" or not words:
        return list(words), []
    pieces, offsets, pos = [], [], 0
    for w in words:
        t = w.text.strip()
        offsets.append((pos, pos + len(t)))
        pieces.append(t)
        pos += len(t) + 1
    text = " ".join(pieces)
    spans = redactor.find(text)
    if not spans:
        return list(words), []
    # Groups of words touched by overlapping spans.
    groups: list[list[int]] = []  # [first word, last word]
    for _, start, end in spans:
        first = next(i for i, (a, b) in enumerate(offsets) if b > start)
        last = max(i for i, (a, b) in enumerate(offsets) if a < end)
        if groups and first <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], last)
        else:
            groups.append([first, last])
    out: list[W] = []
    timed: list[TimedSpan] = []
    k = 0
    for first, last in groups:
        out.extend(words[k:first])
        a, b = offsets[first][0], offsets[last][1]
        inside = [(kind, s - a, e - a) for kind, s, e in spans if s < b and e > a]
        said = words[first:last + 1]
        timed.append(TimedSpan(inside[0][0], min(w.start for w in said), max(w.end for w in said)))
        replaced = redactor.apply(text[a:b], inside).strip()
        if replaced and out and not any(ch.isalnum() or ch == "[" for ch in replaced):
            out[-1] = dataclasses.replace(out[-1], text=out[-1].text + replaced)  # "is 4111...1111." -> "is."
        elif replaced:
            lead = " " if words[first].text[:1].isspace() else ""
            probs = [getattr(w, "probability", 1.0) for w in words[first:last + 1]]
            out.append(dataclasses.replace(words[first], text=lead + replaced, end=words[last].end,
                                           **({"probability": min(probs)} if hasattr(words[first], "probability") else {})))
        k = last + 1
    out.extend(words[k:])
    return out, timed
