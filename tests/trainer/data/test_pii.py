"""Personal data and keys become typed placeholders wherever a model would see them; ordinary
text and numbers stay as they are."""

from __future__ import annotations

import re

import pytest

from trainer.data.pii import Redaction, RedactionConfig, RegexRule, default_redactors, luhn_valid
from trainer.data.rows import Example


def redact(text: str, **config: bool) -> str:
    return Redaction(default_redactors(RedactionConfig(**config))).text(text)


@pytest.mark.parametrize("email", ["jane.doe@example.com", "j.smith+orders@mail.example.co.uk", "ops_42@acme-corp.io"])
def test_email_addresses_are_replaced(email):
    assert redact(f"Write to {email}, thanks.") == "Write to [EMAIL], thanks."


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 30 901820",
        "+81-3-1234-5678",
        "+1 (415) 555-0132",
        "+14155550132",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "415 555 0132",
        "1-800-555-0199",
    ],
)
def test_phone_numbers_are_replaced(phone):
    assert redact(f"Call me on {phone} after six.") == "Call me on [PHONE] after six."


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555 5555 5555 4444", "3782 822463 10005"],
)
def test_luhn_valid_card_numbers_are_replaced(card):
    assert redact(f"My card is {card}.") == "My card is [CARD]."


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "4111111111111112", "1234567812345678"])
def test_digit_runs_that_are_not_card_numbers_are_kept(number):
    assert not luhn_valid(number.replace(" ", "")) or number[0] not in "23456"
    assert redact(f"Reference {number}.") == f"Reference {number}."


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "sk-abcdefghijklmnopqrstuvwx0123",
        "AKIAABCDEFGHIJKLMNOP",
        "Bearer abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_keys_are_replaced(key):
    assert redact(f"use {key} for the API") == "use [SECRET] for the API"


def test_public_ip_addresses_are_replaced_private_ones_kept():
    text = "resolver 8.8.8.8, gateway 192.168.1.20, local 127.0.0.1, vpn 10.0.0.7"
    assert redact(text) == "resolver [IP], gateway 192.168.1.20, local 127.0.0.1, vpn 10.0.0.7"


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we sold 1,299 units at $1,299.99 (up 12.5% on 2023).",
        "Order 123456789 shipped; tracking 1Z999AA10123456784; invoice INV-2024-00017.",
        "Unix time 1700000000, ticket 4155550132, version 3.11.7, build 1.2.3.4.5, port 8080.",
        "Meet on 2024-06-01 at 14:30, room 555-0132, flight LH 2024, zip 94103.",
        "The answer is 42; pi is 3.14159265358979; a UUID 123e4567-e89b-12d3-a456-426614174000.",
        "Use the @property decorator; npm install @scope/pkg@1.2.3; a+b=c; x-y-z.",
        "ghost writer ask-me sk-short hf_x AKIA1234",
    ],
)
def test_ordinary_text_and_numbers_are_untouched(text):
    redaction = Redaction()
    assert redaction.text(text) == text
    assert redaction.counts.reasons == {}


def test_every_string_a_model_sees_is_redacted_and_counted():
    arguments = {
        "to": "jane.doe@example.com",
        "cc": ["bob@example.org", 3],
        "meta": {"phone": "+44 20 7946 0958", "count": 2, "note": None},
    }
    call = {"type": "function", "id": "c1", "function": {"name": "send_email", "arguments": arguments}}
    example = Example(
        [
            {"role": "system", "content": "Support agent. Escalations: boss@example.com"},
            {"role": "user", "content": "Email jane.doe@example.com my card 4111 1111 1111 1111 please"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "name": "send_email", "content": '{"sent_from": "93.184.216.34"}'},
            {"role": "assistant", "content": "Sent. Your key sk-abcdefghijklmnopqrstuvwx0 is exposed, rotate it."},
        ],
        trace_id="t1",
    )
    plain = Example([{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}])
    redaction = Redaction()
    out = list(redaction([example, plain]))

    assert out[1] is plain
    messages = out[0].messages
    assert messages[0]["content"] == "Support agent. Escalations: [EMAIL]"
    assert messages[1]["content"] == "Email [EMAIL] my card [CARD] please"
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "send_email",
        "arguments": {"to": "[EMAIL]", "cc": ["[EMAIL]", 3], "meta": {"phone": "[PHONE]", "count": 2, "note": None}},
    }
    assert messages[2]["tool_calls"][0]["id"] == "c1"
    assert messages[3]["content"] == '{"sent_from": "[IP]"}' and messages[3]["tool_call_id"] == "c1"
    assert messages[4]["content"] == "Sent. Your key [SECRET] is exposed, rotate it."
    assert out[0].trace_id == "t1"
    assert example.messages[1]["content"].startswith("Email jane")  # the input is not modified
    assert redaction.counts.reasons == {"email": 4, "card": 1, "phone": 1, "ip": 1, "secret": 1, "rows changed": 1}
    assert (redaction.counts.rows_in, redaction.counts.rows_out) == (2, 2)


def test_kinds_can_be_turned_off_and_rules_added():
    employee = RegexRule("employee id", r"\bEMP-\d{6}\b", "[EMPLOYEE]")

    class Shout:  # any callable with a name
        name = "shouting"

        def __call__(self, text: str) -> tuple[str, int]:
            return re.subn(r"\b(?:ANGRY|FURIOUS)\b", "[LOUD]", text)

    redaction = Redaction([*default_redactors(RedactionConfig(emails=False)), employee, Shout()])
    text = "EMP-004211 (jane@example.com, 415-555-0132) is ANGRY"
    assert redaction.text(text) == "[EMPLOYEE] (jane@example.com, [PHONE]) is [LOUD]"
    assert redaction.counts.reasons == {"employee id": 1, "phone": 1, "shouting": 1}
    assert [r.name for r in default_redactors(RedactionConfig(phones=False, cards=False))] == ["secret", "email", "ip"]


def test_a_rule_check_keeps_the_matches_it_rejects():
    rule = RegexRule("even", r"\d+", "[EVEN]", check=lambda match: int(match) % 2 == 0)
    assert rule("1 2 3 4") == ("1 [EVEN] 3 [EVEN]", 2)


def test_repeated_texts_are_counted_every_time():
    redaction = Redaction()
    for _ in range(3):
        redaction.text("mail jane@example.com")
    assert redaction.counts.reasons == {"email": 3}


def test_the_phone_pattern_finds_what_its_plain_form_finds():
    """`masking.PHONE` is written for speed (its first character before the look-behind); this
    plain form, a look-behind then the two shapes, is what it must match, span for span."""
    import random

    from agent_tracer.masking import PHONE

    plain = re.compile(
        r"(?<![\w+])(?:\+(?:\d[ .()-]{0,2}){7,14}\d"
        r"|(?:1[ .-])?(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([ .-])\d{3}\1\d{4}))(?![\w-])"
    )
    pick = random.Random(7)
    texts = ["+1 (415) 555-0132", "x415-555-0132", "1 415 555 0132", "++44 20 7946 0958", "(415)555-0132"]
    texts += ["".join(pick.choice("0123456789 .-()+x1\n") for _ in range(pick.randint(1, 30))) for _ in range(20_000)]
    for text in texts:
        assert [m.span() for m in PHONE.finditer(text)] == [m.span() for m in plain.finditer(text)], text


def test_the_card_and_phone_hints_never_skip_a_text_their_pattern_matches():
    """The hints skip the regex on texts without the digit runs a match needs; a skipped text must
    be one with nothing to replace (other scripts' digits included: `\\d` matches them, though a
    card number must start with an ASCII digit to be replaced)."""
    import random

    from agent_tracer.masking import CARD, PHONE, _card_number, _may_hold_card, _may_hold_phone

    pick = random.Random(11)
    texts = ["4111 1111 1111 1111", "4111-1111-1111-1111", "+44 20 7946 0958", "(415) 555-0132", "1-800-555-0199"]
    texts += ["٤١١١ ١١١١ ١١١١ ١١١١", "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", '{"created": 1733412345, "id": "call_0eab9d95"}']
    texts += ["".join(pick.choice("0123456789 .-()+xa\n٣") for _ in range(pick.randint(1, 40))) for _ in range(20_000)]
    pieces = [
        "(",
        ")",
        " ",
        ".",
        "-",
        "+",
        "1",
        "x",
        "٣",
        *("".join(pick.choices("0123456789", k=n)) for n in (3, 3, 4)),
    ]
    texts += ["".join(pick.choices(pieces, k=pick.randint(1, 12))) for _ in range(20_000)]  # phone-like
    found = 0
    for text in texts:
        assert _may_hold_card(text) or not any(_card_number(m.group()) for m in CARD.finditer(text)), text
        assert _may_hold_phone(text) or not PHONE.search(text), text
        found += bool(PHONE.search(text))
    assert found > 200  # the property was put to the test
