"""A best guess at each section's function from evidence that can be named and measured.

The evidence, in pop and rock forms (verse-chorus songs): the chorus is the material that
returns and is the loudest of what returns (material returning less than half as often as
the most frequent is not it); verses are the other returning material (a medley has
several), unless it always plays the chorus's chords (an instrumental break heard more than
once); an intro or outro is the first or last section when its material is heard nowhere
else (or only at the other end); a bridge is material heard once, between returning
sections, unless its chords are those of other material (an instrumental break over the
chorus chords, say): then it is instrumental. A section none of these describe gets
``None``: no guess beats a wrong one. benchmarks/sections.py measures how often these rules
are right (docs/sections.md).
"""

from __future__ import annotations

from collections import Counter

FUNCTIONS = ("intro", "verse", "chorus", "bridge", "instrumental", "outro")
LOUDER_DB = 1.0  # a chorus is at least this much louder than the verse, or is the one that returns more


def guess_functions(labels: list[int], loudness: list[float], borrowed: list | None = None) -> list[str | None]:
    """One function (or None) per section from its cluster label, mean loudness (dB) and
    whether its chords are those of material with another label (``borrowed``: a bool, or the
    set of labels whose chords it plays)."""
    borrowed = borrowed or [False] * len(labels)
    n = len(labels)
    if n < 2:
        return [None] * n
    counts = Counter(labels)
    energy = {label: sum(loudness[i] for i in range(n) if labels[i] == label) / counts[label] for label in counts}
    first_seen = {label: labels.index(label) for label in counts}
    returning = [label for label in counts if counts[label] >= 2]
    chorus = None
    verses: set[int] = set()
    solos: set[int] = set()
    if returning:
        # The loudest returning material; near-equal loudness: the one that returns more often.
        # Material that returns less than half as often as the most frequent one is not it (a
        # medley's verses and breaks against its chorus).
        most = max(counts[label] for label in returning)
        chorus = max(returning, key=lambda label: (2 * counts[label] >= most, round(energy[label] / LOUDER_DB),
                                                   counts[label], -first_seen[label]))
        for label in returning:
            where = [i for i in range(n) if labels[i] == label]
            if label == chorus or set(where) <= {0, n - 1}:
                continue  # the chorus; material only at the two ends is an intro and outro
            # Other returning material is a verse (a medley has several), unless it always plays
            # the chords of other material (an instrumental break over the chorus, heard twice).
            (solos if all(_plays(borrowed[i], chorus) for i in where) else verses).add(label)
    functions: list[str | None] = [None] * n
    for i, label in enumerate(labels):
        if label == chorus:
            functions[i] = "chorus"
        elif label in verses:
            functions[i] = "verse"
        elif label in solos:
            functions[i] = "instrumental"
    ends = {labels[0], labels[-1]}
    if functions[0] is None and (counts[labels[0]] == 1 or set(i for i, x in enumerate(labels) if x == labels[0]) <= {0, n - 1}):
        functions[0] = "intro"
    if functions[-1] is None and (counts[labels[-1]] == 1 or labels[-1] in ends):
        functions[-1] = "outro"
    body = [i for i in range(1, n - 1) if functions[i] is None]
    main = [i for i in range(n) if functions[i] in ("verse", "chorus")]
    for i in body:
        if counts[labels[i]] == 1 and main and main[0] < i < main[-1]:
            functions[i] = "instrumental" if borrowed[i] else "bridge"
    return functions


def _plays(borrowed, label) -> bool:
    """Whether a section with ``borrowed`` (a bool, or a set of labels) plays ``label``'s chords."""
    return label in borrowed if isinstance(borrowed, (set, frozenset)) else bool(borrowed)
