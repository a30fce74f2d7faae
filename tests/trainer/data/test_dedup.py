"""Exact copies of a row and near copies of a prompt are dropped, the first kept, and counted."""

from __future__ import annotations

import random

import pytest

from agent_tracer.errors import ConfigError
from trainer.data.dedup import ExactDedup, NearDedup, NearDedupConfig
from trainer.data.rows import Example

SYSTEM = (
    "You are the support agent of an online shop. Use the tools to look up orders, track parcels "
    "and issue refunds. Be brief and polite, never promise a delivery date the carrier has not given."
)
REQUEST = (
    "Hello, I ordered green hiking boots last Tuesday and paid for express shipping, but the tracking "
    "page still says label created. Could you please check where my parcel is now, whether it left your "
    "warehouse, and when it should arrive?"
)


def example(user: str, answer: str = "Let me check that for you.", system: str = SYSTEM) -> Example:
    return Example(
        [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        trace_id="t",
    )


def near(examples: list[Example], **config) -> tuple[list[Example], NearDedup]:
    step = NearDedup(NearDedupConfig(**config))
    return list(step(examples)), step


def test_exact_duplicates_are_dropped_keeping_the_first_and_counted():
    first = example(REQUEST)
    same_keys_reordered = Example([{"content": m["content"], "role": m["role"]} for m in first.messages], trace_id="u")
    other_answer = example(REQUEST, answer="Your parcel left the warehouse this morning.")
    step = ExactDedup()
    out = list(step([first, same_keys_reordered, other_answer, example(REQUEST)]))
    assert out == [first, other_answer] and out[0] is first
    assert (step.counts.rows_in, step.counts.rows_out) == (4, 2)
    assert step.counts.reasons == {"exact duplicate": 2}


def test_tools_are_part_of_an_exact_row():
    tool = {"type": "function", "function": {"name": "track_parcel", "parameters": {"type": "object"}}}
    with_tool = example(REQUEST)
    with_tool.tools = [tool]
    assert len(list(ExactDedup()([example(REQUEST), with_tool]))) == 2


def test_request_with_one_word_changed_out_of_forty_is_a_near_duplicate():
    words = REQUEST.split()
    assert len(words) == 40
    for position, replacement in [(0, "Hi,"), (5, "brown"), (23, "find"), (39, "come?")]:
        changed = " ".join(words[:position] + [replacement] + words[position + 1 :])
        out, step = near([example(REQUEST), example(changed, answer="A different answer.")], threshold=0.9)
        assert len(out) == 1 and out[0].messages[1]["content"] == REQUEST, position
        assert step.counts.reasons == {"near duplicate": 1}


def test_unrelated_requests_sharing_only_the_system_prompt_are_kept():
    requests = [
        REQUEST,
        "Please cancel order 5521, I found the same jacket cheaper in a store near my office.",
        "Do you ship to Norway, and are import taxes included in the price shown at checkout?",
        "My refund for the returned blender has not arrived after three weeks, what is going on?",
    ]
    long_system = SYSTEM + " Policies: " + " ".join(f"rule{i} applies." for i in range(300))  # 300+ words
    out, step = near([example(r, system=long_system) for r in requests])
    assert len(out) == 4 and step.counts.reasons == {}


def test_short_requests_that_differ_in_their_subject_are_kept():
    out, _ = near([example("What is the weather in Paris today?"), example("What is the weather in Rome today?")])
    assert len(out) == 2


def test_a_group_of_twenty_near_copies_collapses_to_its_first():
    swaps = [
        ("ordered", "bought"),
        ("green", "olive"),
        ("Tuesday", "Monday"),
        ("check", "find"),
        ("arrive", "get"),
        ("Could", "Can"),
        ("parcel", "package"),
        ("still", "now"),
    ]
    copies = [REQUEST]
    for i in range(19):
        text = REQUEST if i % 3 else REQUEST.upper()
        if i % 2:
            text = text.replace(",", "").replace("?", " ?!")
        if i % 4 == 1:
            text = "  " + text.replace(" ", "   ")
        old, new = swaps[i % len(swaps)]
        copies.append(text.replace(old, new) if i % 5 else text)
    others = ["Where is my refund for order 7731?", "Can I change the delivery address of an order already shipped?"]
    examples = [example(text, answer=f"Answer {i}") for i, text in enumerate(copies)] + [example(o) for o in others]
    rest = examples[1:]
    random.Random(3).shuffle(rest)  # the original first, the rest in any order
    examples[1:] = rest
    out, step = near(examples)
    assert [e.messages[1]["content"] for e in out if e.messages[1]["content"] not in others] == [REQUEST]
    assert len(out) == 3 and step.counts.reasons == {"near duplicate": 19}


def test_near_copies_are_found_across_batches_and_the_first_is_kept():
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(3000)]
    prompts = [" ".join(rng.sample(vocabulary, 60)) for _ in range(700)]
    copies = []
    for prompt in prompts[:150]:  # one word of 60 changed: Jaccard 59/61
        words = prompt.split()
        words[rng.randrange(60)] = "changed"
        copies.append(" ".join(words))
    examples = [example(p) for p in prompts + copies]
    out, step = near(examples)
    assert [e.messages[1]["content"] for e in out] == prompts
    assert (step.counts.rows_in, step.counts.rows_out) == (850, 700)
    assert near(examples)[0] == out  # the same every run


def test_examples_without_user_text_pass_unchecked():
    no_user = Example([{"role": "system", "content": SYSTEM}, {"role": "assistant", "content": "Hello!"}])
    out, step = near([no_user, no_user, example(REQUEST)])
    assert len(out) == 3 and step.counts.reasons == {"no user text (not checked)": 2}


def test_word_order_counts_with_trigram_shingles():
    a, b = "convert 100 USD to EUR at the current rate", "convert 100 EUR to USD at the current rate"
    assert len(near([example(a), example(b)])[0]) == 1  # unigrams: the same words
    assert len(near([example(a), example(b)], shingle_size=3)[0]) == 2


def test_bands_default_to_the_fewest_that_find_pairs_at_the_threshold():
    config = NearDedupConfig()
    assert (config.num_perm, config.bands, config.rows) == (256, 9, 8)
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        c = NearDedupConfig(threshold=threshold)
        assert c.bands * c.rows <= c.num_perm
        assert 1 - (1 - threshold**c.rows) ** c.bands >= 0.99
        assert c.bands == 1 or 1 - (1 - threshold**c.rows) ** (c.bands - 1) < 0.99
    with pytest.raises(ConfigError, match="at most num_perm"):
        NearDedupConfig(bands=40, rows=8)
