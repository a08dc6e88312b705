"""Call categories: rules in a YAML file, parsed and validated with file and line, and
evaluated over a call's sentences (pure functions over `Spoken` rows, no database).

```yaml
categories:
  - name: escalation-asked
    match: {any: [{phrase: "speak to a manager"}, {phrase: "supervisor"}], speaker: customer}
  - name: cancellation-threat
    match: {all: [{phrase: "cancel"}, {not: {phrase: "don't cancel"}}]}
  - name: negative-ending
    match: {sentiment: negative, last_seconds: 60, speaker: customer, min_share: 0.5}
  - name: long-hold
    match: {silence_longer_than_s: 60}
```

A `match` mapping holds one or more conditions (all must hold) and optional scope keys
that narrow the sentences it and everything under it look at:

| key | meaning |
| --- | --- |
| `phrase: TEXT` or `[TEXT, ...]` | a sentence holds the phrase (any of them): case-insensitive, whole words |
| `near: [A, B]`, `within_words: N` (10) | phrases A and B at most N words apart (across sentences, in time order) |
| `sentiment: LABEL`, `min_share: F` or `min_count: N` (1) | sentences of that sentiment: at least N, or at least a share F of the scoped sentences |
| `silence_longer_than_s: S` | nobody speaks for more than S seconds |
| `talk_share_above: F` / `talk_share_below: F` | the scoped speaker's share of the talk time |
| `interruptions_at_least: N` | at least N interruptions (by the scoped speaker, when one is given) |
| `any: [...]`, `all: [...]`, `not: {...}` | combinations |
| scope: `speaker: ROLE`, `first_seconds: S`, `last_seconds: S` | only that speaker's sentences / the first or last S seconds of the call |

Live calls are evaluated as sentences arrive: a category is reported as soon as the
sentence that makes its rule match is stored. Rules that can only be decided at the end
of a call (`last_seconds`, `min_share`, `talk_share_*`) wait for it; `not` is judged on
what was said so far (and again when the call ends).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from callsense.core.marked_yaml import MarkedDict, MarkedList, MarkedYamlError, load_marked
from callsense.nlp import characteristics as ch
from callsense.nlp.characteristics import Spoken

LABELS = ("negative", "neutral", "positive")
DEFAULT_RULES = "default_categories.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

COMBINATORS = ("any", "all", "not")
CONDITIONS = ("phrase", "near", "sentiment", "silence_longer_than_s", "talk_share_above", "talk_share_below",
              "interruptions_at_least")
SCOPES = ("speaker", "first_seconds", "last_seconds")
PARAMETERS = {"within_words": "near", "min_share": "sentiment", "min_count": "sentiment"}
MATCH_KEYS = COMBINATORS + CONDITIONS + SCOPES + tuple(PARAMETERS)
CATEGORY_KEYS = ("name", "match", "description")


# ---- errors ------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class CategoryRulesError(ValueError):
    """A rule file that cannot be used; `problems` name file and line."""

    def __init__(self, problems: Sequence[RuleProblem]):
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in category rules:\n" + "\n".join(map(str, self.problems)))


def _nearest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---- the rule tree ------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """Where a condition became true: the sentence (index in time order) and its call time.
    `position` None: no sentence in particular (a `not` over nothing said, the call's end)."""

    position: int | None
    at: float | None


VACUOUS = Hit(None, None)


@dataclass(frozen=True)
class Scope:
    speaker: str | None = None
    first_s: float | None = None
    last_s: float | None = None


class Node:
    final_only = False

    def evaluate(self, call: "CallView", scope: Scope) -> Hit | None:  # pragma: no cover - interface
        raise NotImplementedError

    def phrases(self) -> list[str]:
        return []


def _latest(hits: Iterable[Hit]) -> Hit:
    known = [h for h in hits if h.position is not None]
    return max(known, key=lambda h: h.position) if known else VACUOUS


@dataclass
class AllOf(Node):
    children: list[Node]

    @property
    def final_only(self) -> bool:  # type: ignore[override]
        return any(c.final_only for c in self.children)

    def evaluate(self, call, scope):
        hits = []
        for c in self.children:
            h = c.evaluate(call, scope)
            if h is None:
                return None
            hits.append(h)
        return _latest(hits)

    def phrases(self):
        return [p for c in self.children for p in c.phrases()]


@dataclass
class AnyOf(Node):
    children: list[Node]

    @property
    def final_only(self) -> bool:  # type: ignore[override]
        return any(c.final_only for c in self.children)

    def evaluate(self, call, scope):
        hits = [h for h in (c.evaluate(call, scope) for c in self.children) if h is not None]
        if not hits:
            return None
        known = [h for h in hits if h.position is not None]
        return min(known, key=lambda h: h.position) if known else VACUOUS

    def phrases(self):
        return [p for c in self.children for p in c.phrases()]


@dataclass
class Not(Node):
    child: Node

    @property
    def final_only(self) -> bool:  # type: ignore[override]
        return self.child.final_only

    def evaluate(self, call, scope):
        return None if self.child.evaluate(call, scope) is not None else VACUOUS


@dataclass
class Scoped(Node):
    """Narrows the scope for the node under it."""

    child: Node
    speaker: str | None = None
    first_s: float | None = None
    last_s: float | None = None

    @property
    def final_only(self) -> bool:  # type: ignore[override]
        return self.last_s is not None or self.child.final_only

    def evaluate(self, call, scope):
        return self.child.evaluate(call, Scope(
            speaker=self.speaker if self.speaker is not None else scope.speaker,
            first_s=self.first_s if self.first_s is not None else scope.first_s,
            last_s=self.last_s if self.last_s is not None else scope.last_s))

    def phrases(self):
        return self.child.phrases()


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def normalize(text: str) -> str:
    return text.translate(_APOSTROPHES).lower()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalize(text))


@dataclass
class Phrase(Node):
    texts: list[str]

    def __post_init__(self):
        self._patterns = []
        for t in self.texts:
            words = tokens(t)
            pattern = re.compile(r"(?<![\w'])" + r"[\s,;:.!?-]+".join(map(re.escape, words)) + r"(?![\w'])")
            # A cheap substring test first: the regex runs only on sentences holding the longest word.
            self._patterns.append((max(words, key=len), pattern))

    def matches(self, low: str) -> bool:
        return any(needle in low and pattern.search(low) for needle, pattern in self._patterns)

    def evaluate(self, call, scope):
        for pos in call.positions(scope):
            if self.matches(call.lowered[pos]):
                return Hit(pos, call.sentences[pos].start)
        return None

    def phrases(self):
        return list(self.texts)


@dataclass
class Near(Node):
    a: list[str]
    b: list[str]
    within: int

    def evaluate(self, call, scope):
        seq: list[tuple[str, int]] = []  # (token, sentence position) in time order
        for pos in call.positions(scope):
            seq.extend((tok, pos) for tok in call.tokens(pos))
        words = [t for t, _ in seq]
        at_a = [o for p in self.a for o in _occurrences(words, tokens(p))]
        at_b = [o for p in self.b for o in _occurrences(words, tokens(p))]
        best: int | None = None
        for i, la in at_a:
            for j, lb in at_b:
                if i == j and la == lb:
                    continue  # the same words: one occurrence is not "near" itself
                gap = max(j - (i + la), i - (j + lb), 0)  # words between the two
                if gap <= self.within:
                    end = seq[max(i + la, j + lb) - 1][1]
                    best = end if best is None else min(best, end)
        return None if best is None else Hit(best, call.sentences[best].start)

    def phrases(self):
        return self.a + self.b


def _occurrences(words: list[str], phrase_words: list[str]) -> list[tuple[int, int]]:
    n = len(phrase_words)
    if not n:
        return []
    first = phrase_words[0]
    return [(i, n) for i, w in enumerate(words) if w == first and words[i:i + n] == phrase_words]


@dataclass
class SentimentCond(Node):
    label: str
    min_count: int = 1
    min_share: float | None = None

    @property
    def final_only(self) -> bool:  # type: ignore[override]
        return self.min_share is not None

    def evaluate(self, call, scope):
        positions = call.positions(scope)
        count = 0
        hit = None
        for pos in positions:
            if call.sentences[pos].sentiment == self.label:
                count += 1
                if count == self.min_count and hit is None:
                    hit = Hit(pos, call.sentences[pos].start)
        if hit is None:
            return None
        if self.min_share is not None:
            if not positions or count / len(positions) < self.min_share:
                return None
            return Hit(positions[-1], call.sentences[positions[-1]].start)
        return hit


@dataclass
class SilenceLonger(Node):
    seconds: float

    def evaluate(self, call, scope):
        for s in call.silences:
            if s.length > self.seconds:
                return Hit(s.position, s.end) if s.position is not None else Hit(None, s.end)
        return None


@dataclass
class TalkShare(Node):
    above: float | None = None
    below: float | None = None
    final_only = True

    def evaluate(self, call, scope):
        if scope.speaker is None:
            return None
        total = call.stats.talk_s
        mine = call.stats.speakers.get(scope.speaker)
        share = (mine.talk_s / total) if (mine and total > 0) else 0.0
        if self.above is not None and not share > self.above:
            return None
        if self.below is not None and not share < self.below:
            return None
        return VACUOUS


@dataclass
class InterruptionsAtLeast(Node):
    count: int

    def evaluate(self, call, scope):
        n = 0
        for i in call.interruptions:
            if scope.speaker is not None and i.by != scope.speaker:
                continue
            if not _in_window(call, scope, call.sentences[i.position]):
                continue
            n += 1
            if n >= self.count:
                return Hit(i.position, i.at)
        return None


def _in_window(call: "CallView", scope: Scope, s: Spoken) -> bool:
    if scope.first_s is not None and s.start >= scope.first_s:
        return False
    if scope.last_s is not None and s.end <= call.end_s - scope.last_s:
        return False
    return True


# ---- a call as the rules see it -------------------------------------------------------


class CallView:
    """One call's sentences in time order, with what the rules derive from them computed once."""

    def __init__(self, sentences: Iterable[Spoken], duration_s: float | None = None, final: bool = True):
        self.sentences: list[Spoken] = ch.in_time_order(sentences)
        self.duration_s = duration_s
        self.final = final
        self._positions: dict[Scope, list[int]] = {}
        self._tokens: dict[int, list[str]] = {}

    @cached_property
    def lowered(self) -> list[str]:
        return [normalize(s.text) for s in self.sentences]

    @cached_property
    def end_s(self) -> float:
        return max(self.duration_s or 0.0, max((s.end for s in self.sentences), default=0.0))

    @cached_property
    def silences(self) -> list[ch.Silence]:
        return ch.silences(self.sentences, self.duration_s if self.final else None)

    @cached_property
    def interruptions(self) -> list[ch.Interruption]:
        return ch.interruptions(self.sentences)

    @cached_property
    def stats(self) -> ch.CallCharacteristics:
        return ch.characteristics(self.sentences, self.duration_s)

    def tokens(self, pos: int) -> list[str]:
        got = self._tokens.get(pos)
        if got is None:
            got = self._tokens[pos] = tokens(self.sentences[pos].text)
        return got

    def positions(self, scope: Scope) -> list[int]:
        got = self._positions.get(scope)
        if got is None:
            got = [i for i, s in enumerate(self.sentences)
                   if (scope.speaker is None or s.speaker == scope.speaker) and _in_window(self, scope, s)]
            self._positions[scope] = got
        return got


# ---- categories -----------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryMatch:
    category: str
    position: int | None  # index in time order of the sentence that made the rule match
    at: float | None  # its call time (s)


@dataclass
class Category:
    name: str
    match: Node
    description: str = ""
    file: str = ""
    line: int = 0

    @property
    def final_only(self) -> bool:
        return self.match.final_only


@dataclass
class RuleSet:
    categories: list[Category] = field(default_factory=list)
    source: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def evaluate(self, call: CallView) -> list[CategoryMatch]:
        """Categories whose rule holds for the call. A call not final yet (live, in progress)
        skips the rules that need its end."""
        out = []
        for cat in self.categories:
            if not call.final and cat.final_only:
                continue
            hit = cat.match.evaluate(call, Scope())
            if hit is not None:
                out.append(CategoryMatch(cat.name, hit.position, hit.at))
        return out

    def needles(self) -> list[str]:
        """Every phrase in the rules (for prefiltering calls outside Python)."""
        return sorted({p for c in self.categories for p in c.match.phrases()})


def evaluate(rules: RuleSet, sentences: Iterable[Spoken], duration_s: float | None = None,
             final: bool = True) -> list[CategoryMatch]:
    return rules.evaluate(CallView(sentences, duration_s, final))


# ---- parsing and validation -------------------------------------------------------------


class _Parser:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[RuleProblem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(RuleProblem(self.file, line, message))

    def rules(self, data) -> RuleSet:
        out = RuleSet(source=self.file)
        if not isinstance(data, MarkedDict):
            self.error(getattr(data, "line", 1), "a category file is a mapping with the key 'categories'")
            return out
        for key in data:
            if key != "categories":
                self.error(data.line_of(key), f"unknown key '{key}'{_nearest(key, ['categories'])}; "
                                              "the file's only key is 'categories'")
        items = data.get("categories")
        if not isinstance(items, MarkedList):
            self.error(data.line_of("categories"), "'categories' must be a list of categories")
            return out
        seen: dict[str, int] = {}
        for k, item in enumerate(items):
            line = items.line_of(k)
            cat = self.category(item, line)
            if cat is None:
                continue
            if cat.name in seen:
                self.error(cat.line, f"category '{cat.name}' is defined twice (first at line {seen[cat.name]})")
                continue
            seen[cat.name] = cat.line
            out.categories.append(cat)
        return out

    def category(self, item, line: int) -> Category | None:
        if not isinstance(item, MarkedDict):
            self.error(line, "a category is a mapping with 'name' and 'match'")
            return None
        ok = True
        for key in item:
            if key not in CATEGORY_KEYS:
                self.error(item.line_of(key), f"unknown key '{key}' in a category{_nearest(key, CATEGORY_KEYS)}; "
                                              f"keys: {', '.join(CATEGORY_KEYS)}")
                ok = False
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.error(item.line_of("name") if "name" in item else item.line,
                       "a category needs a 'name': letters, digits, '-', '_' or '.', at most 64 characters"
                       + (f" (got {name!r})" if name is not None else ""))
            ok = False
        if "match" not in item:
            self.error(item.line, f"category '{name}' has no 'match'")
            return None
        node = self.node(item["match"], item.line_of("match"), f"category '{name}'")
        description = item.get("description", "")
        if not isinstance(description, str):
            self.error(item.line_of("description"), "'description' must be text")
            ok = False
        if node is None or not ok:
            return None
        return Category(str(name), node, description, self.file, item.line)

    def node(self, spec, line: int, where: str) -> Node | None:
        if not isinstance(spec, MarkedDict):
            self.error(getattr(spec, "line", line), f"{where}: a match is a mapping of conditions "
                                                    f"({', '.join(COMBINATORS + CONDITIONS)})")
            return None
        bad = False
        for key in spec:
            if key not in MATCH_KEYS:
                self.error(spec.line_of(key), f"{where}: unknown match key '{key}'{_nearest(key, MATCH_KEYS)}; "
                                              f"conditions: {', '.join(COMBINATORS + CONDITIONS)}; scope: {', '.join(SCOPES)}")
                bad = True
        for param, owner in PARAMETERS.items():
            if param in spec and owner not in spec:
                self.error(spec.line_of(param), f"{where}: '{param}' belongs with '{owner}' in the same mapping")
                bad = True
        if "min_share" in spec and "min_count" in spec:
            self.error(spec.line_of("min_count"), f"{where}: give 'min_share' or 'min_count', not both")
            bad = True
        conditions = [k for k in spec if k in COMBINATORS + CONDITIONS]
        if not conditions and not bad:
            self.error(spec.line, f"{where}: a match needs a condition: one of {', '.join(COMBINATORS + CONDITIONS)}")
            return None
        children: list[Node] = []
        for key in conditions:
            child = self.condition(spec, key, where)
            if child is None:
                bad = True
            else:
                children.append(child)
        scope = self.scope(spec, where)
        if bad or scope is None:
            return None
        node = children[0] if len(children) == 1 else AllOf(children)
        if any(v is not None for v in scope):
            node = Scoped(node, *scope)
        return node

    def scope(self, spec: MarkedDict, where: str):
        speaker = spec.get("speaker")
        if speaker is not None and (not isinstance(speaker, str) or not speaker.strip()):
            self.error(spec.line_of("speaker"), f"{where}: 'speaker' is a role such as agent or customer")
            return None
        first = self.number(spec, "first_seconds", where, minimum=0, exclusive=True)
        last = self.number(spec, "last_seconds", where, minimum=0, exclusive=True)
        if first is False or last is False:
            return None
        if first is not None and last is not None:
            self.error(spec.line_of("last_seconds"), f"{where}: give 'first_seconds' or 'last_seconds', not both")
            return None
        return (speaker, first, last)

    def number(self, spec: MarkedDict, key: str, where: str, *, minimum: float = 0, maximum: float | None = None,
               exclusive: bool = False, integer: bool = False):
        """The value, None when absent, False (after reporting) when invalid."""
        if key not in spec:
            return None
        v = spec[key]
        kind = "a whole number" if integer else "a number"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)) \
                or (isinstance(v, float) and not math.isfinite(v)):
            self.error(spec.line_of(key), f"{where}: '{key}' must be {kind} (got {v!r})")
            return False
        if (v <= minimum if exclusive else v < minimum) or (maximum is not None and v > maximum):
            bound = f"above {minimum}" if exclusive else f"at least {minimum}"
            self.error(spec.line_of(key), f"{where}: '{key}' must be {bound}" +
                       (f" and at most {maximum}" if maximum is not None else "") + f" (got {v!r})")
            return False
        return v

    def phrase_list(self, spec: MarkedDict, key: str, where: str, value=None) -> list[str] | None:
        v = spec[key] if value is None else value
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items or not all(isinstance(p, str) for p in items):
            self.error(spec.line_of(key), f"{where}: '{key}' is a phrase or a list of phrases")
            return None
        for p in items:
            if not tokens(p):
                self.error(spec.line_of(key), f"{where}: phrase {p!r} has no words")
                return None
        return list(items)

    def condition(self, spec: MarkedDict, key: str, where: str) -> Node | None:
        line = spec.line_of(key)
        v = spec[key]
        if key in ("any", "all"):
            if not isinstance(v, MarkedList) or not v:
                self.error(line, f"{where}: '{key}' is a non-empty list of matches")
                return None
            kids = [self.node(item, v.line_of(i), where) for i, item in enumerate(v)]
            if any(k is None for k in kids):
                return None
            return AnyOf(kids) if key == "any" else AllOf(kids)
        if key == "not":
            kid = self.node(v, line, where)
            return None if kid is None else Not(kid)
        if key == "phrase":
            texts = self.phrase_list(spec, key, where)
            return None if texts is None else Phrase(texts)
        if key == "near":
            if not isinstance(v, list) or len(v) != 2:
                self.error(line, f"{where}: 'near' is a list of two phrases (each a phrase or a list of phrases), "
                                 "with 'within_words: N'")
                return None
            a = self.phrase_list(spec, key, where, v[0])
            b = self.phrase_list(spec, key, where, v[1])
            within = self.number(spec, "within_words", where, minimum=0, integer=True)
            if a is None or b is None or within is False:
                return None
            return Near(a, b, 10 if within is None else int(within))
        if key == "sentiment":
            if v not in LABELS:
                self.error(line, f"{where}: sentiment '{v}' is not a label{_nearest(v, LABELS)}; labels: {', '.join(LABELS)}")
                return None
            share = self.number(spec, "min_share", where, minimum=0, maximum=1, exclusive=True)
            count = self.number(spec, "min_count", where, minimum=1, integer=True)
            if share is False or count is False:
                return None
            return SentimentCond(v, int(count or 1), share)
        if key == "silence_longer_than_s":
            s = self.number(spec, key, where, minimum=0)
            return None if s in (None, False) else SilenceLonger(float(s))
        if key in ("talk_share_above", "talk_share_below"):
            f = self.number(spec, key, where, minimum=0, maximum=1)
            if f in (None, False):
                return None
            if "speaker" not in spec:
                self.error(line, f"{where}: '{key}' needs 'speaker' in the same mapping (whose share)")
                return None
            return TalkShare(above=float(f)) if key.endswith("above") else TalkShare(below=float(f))
        if key == "interruptions_at_least":
            n = self.number(spec, key, where, minimum=1, integer=True)
            return None if n in (None, False) else InterruptionsAtLeast(int(n))
        raise AssertionError(key)  # pragma: no cover


def parse_rules(text: str, file: str = "<string>") -> RuleSet:
    """Rules from YAML text; raises CategoryRulesError naming file and line of every problem."""
    try:
        data, yaml_problems = load_marked(text, file)
    except MarkedYamlError as e:
        raise CategoryRulesError([RuleProblem(file, e.problem.line, e.problem.message)]) from None
    parser = _Parser(file)
    for p in yaml_problems:
        if p.severity == "error":
            parser.error(p.line, p.message)
    if data is None:
        parser.error(1, "the file is empty: it needs 'categories:' with a list of categories")
        raise CategoryRulesError(parser.problems)
    rules = parser.rules(data)
    if parser.problems:
        raise CategoryRulesError(parser.problems)
    return rules


def load_rules(path: Path | str | None = None) -> RuleSet:
    """The rules of a file, or the default rule set shipped with callsense (path None)."""
    if path is None:
        text = resources.files("callsense.nlp").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
        return parse_rules(text, f"<callsense default rules: {DEFAULT_RULES}>")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CategoryRulesError([RuleProblem(str(p), 1, f"cannot read the file: {e}")]) from None
    return parse_rules(text, str(p))

