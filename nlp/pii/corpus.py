"""A generated test set for the PII redactor: support-call sentences with card numbers, phone
numbers, e-mails, account / ID numbers and street addresses, written the way an ASR engine
writes them (digits, dashes, "@") or spoken ("four one one one", "double five", "oh", "john dot
smith at example dot com"), each with the character span of every PII instance seeded in it;
and PII-free support sentences full of numbers (quantities, prices, times, dates) for the
false-positive side. Deterministic for a seed. Used by tests/nlp/test_pii.py and
bench/bench_pii.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers

from callsense.nlp.pii.redactor import luhn_valid

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEEN_WORDS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS_WORDS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}

FIRST = ["john", "maria", "wei", "fatima", "olivia", "raj", "sofia", "liam", "chen", "amara", "lucas", "emma", "noah"]
LAST = ["smith", "garcia", "nguyen", "okafor", "patel", "kowalski", "brown", "silva", "lee", "muller", "jones"]
DOMAINS = [("example", "com"), ("gmail", "com"), ("outlook", "com"), ("yahoo", "co.uk"), ("northwind", "net"),
           ("contoso", "org"), ("mail", "de"), ("fabrikam", "io")]
STREETS = ["Main", "Oak", "Maple", "Elm", "Cedar Ridge", "Lincoln", "Washington", "Park", "Sunset", "Lake View",
           "Martin Luther King", "Fifth", "Highland", "Church", "Mill Creek", "Pine"]
SUFFIXES = ["Street", "St.", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Lane", "Drive", "Court", "Way", "Place",
            "Terrace", "Circle", "Parkway"]
CITIES = [("Springfield", "IL", "62704"), ("Austin", "TX", "78701"), ("Portland", "OR", "97205"), ("Columbus", "OH", "43215")]

TEMPLATES = {
    "CARD": ["Sure, my card number is {}.", "It's {} and it expires next year.", "The card I used was {}, the Visa.",
             "Okay, {}.", "Can you charge {} please?", "Yeah the number on the front is {}",
             "{} is the card on file.", "I'll read it out: {}. Did you get that?"],
    "PHONE": ["You can reach me at {}.", "My phone number is {}.", "Call me back on {} after five.",
              "It's {}, that's my cell.", "The best number is {} thanks.", "Sure, {}.", "{} is my mobile.",
              "Please text {} when it ships."],
    "EMAIL": ["My email is {}.", "Send it to {} please.", "It's {}, all lowercase.", "You have {} on file, right?",
              "The address is {} and I check it daily.", "Sure, {}."],
    "ACCOUNT": ["My account number is {}.", "The member ID is {}.", "Policy number {}, I think.",
                "My customer ID is {} if that helps.", "The reference number you gave me was {}.",
                "My social security number is {}.", "Account {} is the one that was charged.",
                "It's the confirmation number {}."],
    "ADDRESS": ["I live at {}.", "Please ship it to {} instead.", "The billing address is {}.",
                "We moved to {} last month.", "It should go to {}, not the old one.", "My address is {}."],
}

CLEAN = [
    "I called three times last week and nobody called me back.",
    "It was forty nine ninety nine on the website.",
    "I ordered twelve units but only got ten.",
    "The total came to 149.99 with tax.",
    "I've been a customer for twelve years.",
    "We waited on hold for forty five minutes.",
    "It happened on March fifth, twenty twenty four.",
    "My order of 3 items arrived on the 5th.",
    "The router is on firmware version 2.4.1.",
    "I need two more of the large ones and one small one.",
    "The meeting is between nine and five on weekdays.",
    "You charged me twice, two charges of nineteen ninety nine.",
    "I got the 250 GB plan for 30 dollars a month.",
    "One more thing, the second box was damaged.",
    "I'm on the fourth floor, room 204.",
    "It takes three to five business days.",
    "The package weighed about 2.5 kilos.",
    "I paid $1,200 for the laptop in 2023.",
    "Can you give me the order number, please?",
    "My account was locked after three tries.",
    "I was charged one hundred and twenty dollars.",
    "That is the second time this month.",
    "It's a one way street so the driver missed it.",
    "They said it would be fixed in twenty four hours.",
    "Okay, one two three, can you hear me now?",
    "I tried it on two different phones.",
    "The store on the corner closes at nine thirty.",
    "We have six people in the house using the wifi.",
    "Press one for billing, two for support.",
    "My son is eleven and my daughter is fourteen.",
    "The refund of 89 dollars never arrived.",
    "It was about 20 minutes ago.",
    "I bought it in 2019 and it broke in 2021.",
    "Between 8 and 10 percent of the time it drops.",
    "The discount code gave me fifteen percent off.",
    "I'm calling about ticket prices for the 3 o'clock show.",
    "I want the 65 inch one, not the 55.",
    "Store number nine in the mall.",
    "Oh, one more thing about my bill.",
    "It costs 4.99 a month or 49.99 a year.",
    "I sent an email to support yesterday about the northwind.com outage.",
    "Your email said twenty four hours, it has been three days.",
]


@dataclass(frozen=True)
class Case:
    """A sentence and the PII seeded in it: (kind, start, end, the PII as written)."""

    text: str
    pii: tuple[tuple[str, int, int, str], ...]


def two_digit_words(n: int) -> str:
    if n < 10:
        return DIGIT_WORDS[n]
    if n < 20:
        return TEEN_WORDS[n - 10]
    tens, unit = divmod(n, 10)
    return TENS_WORDS[tens] + ("" if unit == 0 else " " + DIGIT_WORDS[unit])


def spell_digits(digits: str, rng: random.Random) -> str:
    """Digit by digit, the way people say them: "oh" or "zero", "double five", "triple one"."""
    words, i = [], 0
    zero = rng.choice(["oh", "zero"])
    while i < len(digits):
        d = digits[i]
        run = 1
        while i + run < len(digits) and digits[i + run] == d and run < 3:
            run += 1
        name = zero if d == "0" else DIGIT_WORDS[int(d)]
        if run >= 2 and rng.random() < 0.5:
            words.append(("triple " if run == 3 else "double ") + name)
            i += run
        else:
            words.append(name)
            i += 1
    return " ".join(words)


def spell_groups(groups: list[str], rng: random.Random) -> str:
    sep = rng.choice([" ", ", ", " dash ", " - ", ". "])
    return sep.join(spell_digits(g, rng) for g in groups)


def write_groups(groups: list[str], rng: random.Random) -> str:
    return rng.choice([" ", "-", "", " - "]).join(groups)


def _split(digits: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i:i + s])
        i += s
    return [g for g in out if g]


def card_number(rng: random.Random) -> tuple[str, list[int]]:
    prefix, length, sizes = rng.choice([("4", 16, [4, 4, 4, 4]), ("51", 16, [4, 4, 4, 4]), ("55", 16, [4, 4, 4, 4]),
                                        ("37", 15, [4, 6, 5]), ("34", 15, [4, 6, 5]), ("6011", 16, [4, 4, 4, 4]),
                                        ("4", 13, [4, 4, 5]), ("62", 19, [4, 4, 4, 4, 3])])
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check, sizes
    raise AssertionError("unreachable")


def us_phone(rng: random.Random) -> str:
    while True:
        digits = f"{rng.randrange(2, 10)}{rng.randrange(100):02d}{rng.randrange(2, 10)}{rng.randrange(100):02d}{rng.randrange(10000):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(digits, "US")):
            return digits


def render_card(rng: random.Random) -> str:
    digits, sizes = card_number(rng)
    style = rng.random()
    if style < 0.35:
        return write_groups(_split(digits, sizes), rng)
    if style < 0.85:
        return spell_groups(_split(digits, sizes), rng)
    # half written, half spoken (ASR engines switch between the two mid-number)
    groups = _split(digits, sizes)
    return " ".join(g if k % 2 == 0 else spell_digits(g, rng) for k, g in enumerate(groups))


def render_phone(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.1:
        cc, rest = rng.choice([("44", "20{:08d}"), ("49", "30{:08d}"), ("33", "1{:08d}"), ("61", "2{:08d}")])
        national = rest.format(rng.randrange(10 ** 8))
        return f"+{cc} " + " ".join(_split(national, [2, 4, 4] if len(national) == 10 else [1, 4, 4]))
    digits = us_phone(rng)
    area, exch, line = digits[:3], digits[3:6], digits[6:]
    if style < 0.45:
        return rng.choice([f"({area}) {exch}-{line}", f"{area}-{exch}-{line}", f"{area}.{exch}.{line}", digits,
                           f"+1 {area} {exch} {line}", f"1-{area}-{exch}-{line}", f"{exch}-{line}"])
    if style < 0.55:  # the last four in pairs: "twelve thirty four"
        pairs = " ".join(two_digit_words(int(line[k:k + 2])) if line[k] != "0" else "oh " + DIGIT_WORDS[int(line[k + 1])]
                         for k in (0, 2))
        return spell_groups([area, exch], rng) + ", " + pairs
    if style < 0.62:
        return "one eight hundred " + spell_groups([exch, line], rng)
    return spell_groups([area, exch, line], rng)


def render_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain, tld = rng.choice(DOMAINS)
    num = str(rng.randrange(1, 99)) if rng.random() < 0.3 else ""
    sep = rng.choice([".", "_", ""])
    style = rng.random()
    if style < 0.4:
        return f"{first}{sep}{last}{num}@{domain}.{tld}"
    spoken_sep = {".": " dot ", "_": " underscore ", "": ""}[sep]
    spoken_num = (" " + spell_digits(num, rng)) if num else ""
    spoken_tld = tld.replace(".", " dot ")
    if style < 0.85:
        return f"{first}{spoken_sep}{last}{spoken_num} at {domain} dot {spoken_tld}"
    return f"{first}{sep}{last}{num} at {domain}.{tld}"  # how Whisper often writes a spoken address


def render_account(rng: random.Random, template: str) -> str:
    if "social security" in template:
        digits = f"{rng.randrange(1, 900):03d}{rng.randrange(1, 100):02d}{rng.randrange(1, 10000):04d}"
        return rng.choice([f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", spell_groups([digits[:3], digits[3:5], digits[5:]], rng)])
    n = rng.randrange(6, 13)
    digits = str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(n - 1))
    style = rng.random()
    if style < 0.3:
        return digits
    if style < 0.45:
        return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2)) + digits
    if style < 0.55:
        return write_groups(_split(digits, [3, 3, 3, 3]), rng)
    return spell_groups(_split(digits, [4, 4, 4]) if rng.random() < 0.5 else [digits], rng)


def render_house_number(rng: random.Random) -> str:
    n = rng.choice([rng.randrange(1, 100), rng.randrange(100, 1000), rng.randrange(1000, 10000), rng.randrange(10000, 40000)])
    style = rng.random()
    if style < 0.45:
        return str(n)
    s = str(n)
    if len(s) <= 2:
        return two_digit_words(n)
    if len(s) == 3 and style < 0.75:
        return DIGIT_WORDS[int(s[0])] + " " + (two_digit_words(int(s[1:])) if s[1] != "0" else "oh " + DIGIT_WORDS[int(s[2])])
    if len(s) == 4 and style < 0.75 and s[2] != "0" and s[0] != "0":
        return two_digit_words(int(s[:2])) + " " + two_digit_words(int(s[2:]))
    return spell_digits(s, rng)


def render_address(rng: random.Random) -> str:
    text = f"{render_house_number(rng)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
    extra = rng.random()
    if extra < 0.2:
        text += rng.choice([", Apt 4B", ", apartment twelve", ", Suite 210", ", unit 7"])
    elif extra < 0.35:
        city, state, zip_code = rng.choice(CITIES)
        text += f", {city}, {state} {zip_code}"
    return text


RENDER = {"CARD": render_card, "PHONE": render_phone, "EMAIL": render_email, "ADDRESS": render_address}


def pii_cases(per_kind: int = 120, seed: int = 15) -> list[Case]:
    """per_kind sentences for each kind (5 kinds), every tenth with a second PII of another kind."""
    rng = random.Random(seed)
    cases = []
    kinds = list(TEMPLATES)
    for kind in kinds:
        for k in range(per_kind):
            parts = [(kind, rng.choice(TEMPLATES[kind]))]
            if k % 10 == 0:
                other = kinds[(kinds.index(kind) + 1 + k // 10) % len(kinds)]
                if other != kind:
                    parts.append((other, rng.choice(TEMPLATES[other])))
            text, pii = "", []
            for kind_, template in parts:
                value = render_account(rng, template) if kind_ == "ACCOUNT" else RENDER[kind_](rng)
                head, tail = template.split("{}")
                if text:
                    text += " "
                start = len(text) + len(head)
                text += head + value + tail
                pii.append((kind_, start, start + len(value), value))
            cases.append(Case(text, tuple(pii)))
    return cases


def clean_sentences() -> list[str]:
    """Support-call sentences without PII but with many numbers."""
    return list(CLEAN)
