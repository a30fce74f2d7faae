"""Fixtures shared by every test: a loopback server that answers like the model APIs, an empty
database of each kind (SQLite file; PostgreSQL when `AGENT_TRACER_TEST_PG_URL` names a server whose
role may create databases: each test gets a database of its own, dropped afterwards), and a tiny
model to train and serve (a tokenizer trained in the test, offline, in milliseconds, and a 2-layer
Llama saved as a model folder), for the trainer's tests and the pipeline example's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent_tracer.testing import FakeUpstream


@pytest.fixture(scope="session")
def upstream():
    with FakeUpstream() as server:
        yield server


PG_ENV = "AGENT_TRACER_TEST_PG_URL"
@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    """An autocommit engine on the test server (for CREATE / DROP DATABASE), or a skip."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL cases need {PG_ENV} (a server where the role may CREATE DATABASE)")
    from agent_tracer.store.engine import create_engine

    engine = create_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'traces.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"agent_tracer_t_{uuid.uuid4().hex[:12]}"
    _admin(admin, f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(engine: Any, sql: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)


# A tiny model: trained and served in seconds, offline.

CORPUS = [
    "What is the status of order A-17? Where is my parcel B-42? The weather in Paris is sunny.",
    '{"name": "lookup_order", "arguments": {"order_id": "A-17"}} {"type": "function", "function": {}}',
    "You answer questions about orders. Echo: shipped delayed delivered unknown order 0123456789",
    "<tool_call> </tool_call> <tools> </tools> <tool_response> </tool_response> # Tools system user",
]


def build_tokenizer(chat_template: str | None = None):
    """A byte-level BPE tokenizer (any text encodes, nothing unknown) with ChatML's special tokens;
    `chat_template` defaults to the built-in tool-calling one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from trainer.chat_template import TOOL_CALLING_TEMPLATE

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=special[1:])
    tokenizer.chat_template = chat_template or TOOL_CALLING_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture
def make_tokenizer():
    """`build_tokenizer` itself, for a test that wants another chat template."""
    return build_tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A folder holding a 2-layer Llama (hidden size 32) and the offline tokenizer: a model any
    `--model` can name, trained in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         initializer_range=0.2)  # layers that matter: LoRA on 0.02-scale ones barely moves the loss
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
