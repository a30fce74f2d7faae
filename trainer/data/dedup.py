"""Duplicate removal: exact copies of a row, and near copies of a prompt. Both keep the first.

Exact duplicates are rows whose messages and tools are identical: the same call captured twice,
or an agent that answers a repeated request the same way. A row is known by a 16-byte BLAKE2b of
its canonical JSON, so the state is a set of digests, never the rows.

Near duplicates are examples whose *prompts* are nearly the same, whatever the answers, at the
same point of a conversation. The prompt is what the user asked (the text of the user turns) and
the names of the tools the model was offered. Not the system prompt, which every run of an agent
shares and would make all its examples look alike; not the answer, since two answers to one
request are the near copy we want to drop; not the tool results, whose boilerplate (the same JSON
fields in every lookup) would drown the few words that tell two tasks apart. The tools count
because the right answer changes with them: a question offered a fitting function or none
(BFCL's irrelevance category asks its questions again with unfitting functions) is two examples.
Only examples at the same depth (assistant turns before the answer) are compared, so the calls of
one run, which share the user's request, never collapse into the first when each is a row.
Similarity is the Jaccard index of the prompts' word sets, estimated with MinHash and found with
LSH banding:

- Shingles are lower-cased word n-grams, single words by default: with longer n-grams one changed
  word moves the index much further, so a threshold of 0.9 would merge only very long prompts.
  Unigrams ignore word order ("convert USD to EUR" and "convert EUR to USD" are one prompt to
  them); `shingle_size=3` restores it at that cost. A prompt shorter than the n-gram size is one
  shingle of all its words; a prompt without words is passed on unchecked.
- The threshold, 0.9 by default, merges a template's repeats with one slot of a long request
  changed, and copies differing in punctuation, case or spacing; short prompts stay apart on one
  changed word ("weather in Paris" vs "weather in Rome" is 0.5). Lower thresholds start to merge
  distinct requests built from one template.
- Each shingle is hashed once (CRC-32, spread over 64 bits by SplitMix64's finaliser); the
  permutations are `a*x + b` modulo 2**64 with random odd `a`, ordered by the high bits
  (multiply-add-shift, a 2-universal family), all of them at once in numpy, from a fixed seed: the
  same examples give the same result every run.
- Signatures have 256 values, of which 8 bits each are kept to verify candidates: as many bytes
  as 64 32-bit values, with a tighter estimate. Two different minimums agree in 8 bits once in
  256, which raises an estimate by (1 - J) / 256.
- LSH: the first `bands` x `rows` values are cut into bands; prompts that agree on a whole band
  are candidates, then verified. The default number of bands is the fewest that makes a pair at
  the threshold a candidate 99% of the time (`_banding`).

State per kept example is its signature and a key and id per band in sorted numpy runs, not a
dict entry per band (the arithmetic behind these choices: BENCHMARKS.md, "Near dedup's parameters").
Examples go through in batches of a few hundred, so numpy does the arithmetic; a band key shared
by many prompts (a template's common words) holds at most `_BUCKET_CAP` of them, which bounds
every lookup without losing the near copies, whose other bands are specific to them.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from agent_tracer import fastjson
from agent_tracer.errors import ConfigError
from agent_tracer.messages import user_text
from trainer.data.rows import Example
from trainer.data.summary import Step

_WORD = re.compile(r"\w+")
_BATCH_EXAMPLES = 256
_BATCH_SHINGLES = 1 << 12
"""A batch closes at this many shingles too: its (permutations x shingles) matrix stays ~8 MB."""
_BUCKET_CAP = 8
_RECALL_AT_THRESHOLD = 0.99
_MAX_ROWS = 8
"""Values per LSH band: prompts at Jaccard 0.5 share a given band once in 256, so unrelated
prompts seldom need verifying."""


def row_digest(example: Example) -> bytes:
    """16-byte BLAKE2b of the row's canonical JSON (sorted keys, compact)."""
    return hashlib.blake2b(fastjson.dumps_sorted(example.row()).encode(), digest_size=16).digest()


def prompt_text(example: Example) -> str:
    """What near-duplicate detection compares: the offered tools' names and the user turns."""
    names = " ".join(tool["function"]["name"] for tool in example.tools)
    said = user_text(example.messages)
    return f"{names}\n{said}" if said else names


def depth(example: Example) -> int:
    """The assistant turns before the answer: where in a conversation the example stands."""
    return sum(1 for m in example.messages[:-1] if m["role"] == "assistant")


class ExactDedup:
    """Streams examples, dropping each whose row (messages and tools) an earlier one had."""

    def __init__(self, counts: Step | None = None) -> None:
        self.counts = counts if counts is not None else Step("exact dedup")
        self._seen: set[bytes] = set()

    def __call__(self, examples: Iterable[Example]) -> Iterator[Example]:
        for example in examples:
            self.counts.rows_in += 1
            digest = row_digest(example)
            if digest in self._seen:
                self.counts.reasons["exact duplicate"] += 1
                continue
            self._seen.add(digest)
            self.counts.rows_out += 1
            yield example


@dataclass
class NearDedupConfig:
    threshold: float = field(
        default=0.9,
        metadata={
            "help": "Estimated Jaccard similarity of two prompts' word sets at or above which the later "
            "example is a near duplicate (0.9: the words they share are 90% of all their distinct words)."
        },
    )
    num_perm: int = field(default=256, metadata={"help": "MinHash permutations per prompt (8 bits of each kept)."})
    bands: int = field(
        default=0,
        metadata={
            "help": "LSH bands; with rows, 0 derives both: the most rows (up to 8) and the fewest bands "
            "that make 99% of pairs at the threshold candidates."
        },
    )
    rows: int = field(default=0, metadata={"help": "Signature values per LSH band (bands x rows <= num_perm)."})
    shingle_size: int = field(
        default=1,
        metadata={
            "help": "Words per shingle: 1 compares word sets; 3 also compares word order but merges only "
            "prompts with about one word changed in 60 at a 0.9 threshold."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the permutations: same seed, same result."})

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"near-dedup threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 1 or self.shingle_size < 1:
            raise ConfigError("num_perm and shingle_size must be at least 1")
        if self.bands == self.rows == 0:
            self.bands, self.rows = _banding(self.threshold, self.num_perm)
        if self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
            raise ConfigError(
                f"bands x rows must be at most num_perm ({self.num_perm}), got {self.bands} x {self.rows}"
            )


def _banding(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band, up to `_MAX_ROWS`, for which some number of bands
    within `num_perm` gives P(candidate) = 1 - (1 - t**rows)**bands >= 99% at t = threshold; and
    the fewest such bands."""
    for rows in range(min(_MAX_ROWS, num_perm), 0, -1):
        for bands in range(1, num_perm // rows + 1):
            if 1 - (1 - threshold**rows) ** bands >= _RECALL_AT_THRESHOLD:
                return bands, rows
    return num_perm, 1


class NearDedup:
    """Streams examples, dropping each whose prompt is a near duplicate of an earlier kept one.

    Examples come out in order, a batch at a time (see the module docstring)."""

    def __init__(self, config: NearDedupConfig | None = None, counts: Step | None = None) -> None:
        self.config = config if config is not None else NearDedupConfig()
        self.counts = counts if counts is not None else Step("near dedup")
        c = self.config
        rng = np.random.default_rng(c.seed)
        self._a = rng.integers(0, 2**64, size=(c.num_perm, 1), dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**64, size=(c.num_perm, 1), dtype=np.uint64)
        self._band_mix = rng.integers(0, 2**64, size=(c.bands, c.rows), dtype=np.uint64) | np.uint64(1)
        self._need = math.ceil(c.threshold * c.num_perm - 1e-9)
        self._index = _BandIndex(c.num_perm)

    def __call__(self, examples: Iterable[Example]) -> Iterator[Example]:
        batch: list[tuple[Example, list[int]]] = []
        shingles = 0
        for example in examples:
            hashes = self._shingle_hashes(prompt_text(example))
            batch.append((example, hashes))
            shingles += len(hashes)
            if len(batch) >= _BATCH_EXAMPLES or shingles >= _BATCH_SHINGLES:
                yield from self._filter(batch)
                batch, shingles = [], 0
        if batch:
            yield from self._filter(batch)

    def _shingle_hashes(self, prompt: str) -> list[int]:
        words = _WORD.findall(prompt.lower())
        n = min(self.config.shingle_size, len(words))
        shingles = set(words) if n <= 1 else {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
        return [zlib.crc32(s.encode()) for s in shingles]

    def _filter(self, batch: list[tuple[Example, list[int]]]) -> Iterator[Example]:
        self.counts.rows_in += len(batch)
        checked = [i for i, (_, hashes) in enumerate(batch) if hashes]
        signatures = self._signatures([batch[i][1] for i in checked])
        # Each depth its own buckets: examples at different depths are never candidates.
        depths = np.fromiter((depth(batch[i][0]) for i in checked), np.uint64, len(checked))
        keys = self._band_keys(signatures) ^ (_mix64(depths) >> np.uint64(32)).astype(np.uint32)[:, None]
        values = (signatures >> np.uint64(32)).astype(np.uint8)
        seen_before = self._index.matches(keys, values, self._need)
        fresh: dict[int, list[int]] = {}  # band key -> ids kept from this batch
        kept_rows: list[int] = []
        row_of = dict(zip(checked, range(len(checked))))
        key_lists = keys.tolist()
        for i, (example, _) in enumerate(batch):
            row = row_of.get(i)
            if row is None:
                self.counts.reasons["no user text (not checked)"] += 1
            elif seen_before[row] or self._matches_fresh(fresh, key_lists[row], values[row]):
                self.counts.reasons["near duplicate"] += 1
                continue
            else:  # the first of its kind: later prompts are compared with it
                kept_rows.append(row)
                kept_id = self._index.add_signature(values[row])
                for key in key_lists[row]:
                    ids = fresh.setdefault(key, [])
                    if len(ids) < _BUCKET_CAP:
                        ids.append(kept_id)
            self.counts.rows_out += 1
            yield example
        self._index.add_keys(keys[kept_rows])

    def _matches_fresh(self, fresh: dict[int, list[int]], keys: list[int], values: np.ndarray) -> bool:
        candidates = [kept for key in keys if key in fresh for kept in fresh[key]]
        return bool(candidates) and bool(self._index.agreeing(values, candidates).max() >= self._need)

    def _signatures(self, shingle_hashes: list[list[int]]) -> np.ndarray:
        """(prompts, num_perm) uint64 MinHash values; every prompt has at least one shingle."""
        counts = np.fromiter(map(len, shingle_hashes), np.int64, len(shingle_hashes))
        x = _mix64(np.fromiter((h for hashes in shingle_hashes for h in hashes), np.uint64, int(counts.sum())))
        permuted = np.multiply(self._a, x)  # (num_perm, shingles): each prompt's shingles contiguous in a row
        permuted += self._b
        starts = np.zeros(len(counts), np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        return np.minimum.reduceat(permuted, starts, axis=1).T.copy() if len(counts) else permuted.T[:0]

    def _band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(prompts, bands) uint32: each band's values folded into one key, a different fold per band."""
        c = self.config
        high = (signatures[:, : c.bands * c.rows] >> np.uint64(32)).reshape(len(signatures), c.bands, c.rows)
        return (_mix64((high * self._band_mix).sum(axis=2, dtype=np.uint64)) >> np.uint64(32)).astype(np.uint32)


class _BandIndex:
    """The kept examples: 8-bit signatures by id, and (band key, id) pairs in sorted runs.

    A batch's pairs become a new run; a run is merged into the one before it once that one is at
    most twice its size, so there are O(log n) runs and each pair is copied O(log n) times (a
    single sorted array would copy all of them for every batch)."""

    def __init__(self, num_perm: int) -> None:
        self._values = np.empty((1024, num_perm), np.uint8)
        self._count = 0
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add_signature(self, values: np.ndarray) -> int:
        if self._count == len(self._values):
            grown = np.empty((2 * len(self._values), self._values.shape[1]), np.uint8)
            grown[: self._count] = self._values
            self._values = grown
        self._values[self._count] = values
        self._count += 1
        return self._count - 1

    def agreeing(self, values: np.ndarray, ids: list[int] | np.ndarray) -> np.ndarray:
        """How many signature values each of the kept `ids` shares with `values` (one signature,
        or one per id)."""
        return (self._values[ids] == values).sum(axis=-1)

    def matches(self, keys: np.ndarray, values: np.ndarray, need: int) -> np.ndarray:
        """Per prompt (row of `keys` / `values`): does a kept example share a band and `need` values?"""
        found = np.zeros(len(keys), bool)
        where, ids = self._find(keys.ravel())
        rows = where // keys.shape[1]
        found[rows[self.agreeing(values[rows], ids) >= need]] = True
        return found

    def add_keys(self, keys: np.ndarray) -> None:
        """Add the band keys of the batch's kept examples (the last `len(keys)` ids), at most
        `_BUCKET_CAP` ids a key."""
        if not len(keys):
            return
        ids = np.repeat(np.arange(self._count - len(keys), self._count, dtype=np.int32), keys.shape[1])
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        flat, ids = flat[order], ids[order]
        run_start = np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1]  # of each key's equal run
        rank = np.arange(len(flat)) - np.repeat(run_start, np.diff(np.r_[run_start, len(flat)]))
        held = np.bincount(self._find(flat)[0], minlength=len(flat))
        keep = held + rank < _BUCKET_CAP
        if not keep.any():
            return
        self._runs.append((flat[keep], ids[keep]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (keys_b, ids_b), (keys_a, ids_a) = self._runs.pop(), self._runs.pop()
            at = np.searchsorted(keys_a, keys_b, "right")
            self._runs.append((np.insert(keys_a, at, keys_b), np.insert(ids_a, at, ids_b)))

    def _find(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (position in `flat`, kept id) whose band key is equal."""
        order = np.argsort(flat)
        queries = flat[order]  # sorted queries make the binary searches cache-friendly
        where, found = [np.empty(0, np.int64)], [np.empty(0, np.int32)]
        for keys, ids in self._runs:
            at = np.searchsorted(keys, queries)[:, None] + np.arange(_BUCKET_CAP)
            inside = at < len(keys)
            at = np.minimum(at, len(keys) - 1)
            query, offset = np.nonzero(inside & (keys[at] == queries[:, None]))
            where.append(order[query])
            found.append(ids[at[query, offset]])
        return np.concatenate(where), np.concatenate(found)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: spreads every input bit over the 64 output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
