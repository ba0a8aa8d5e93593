"""A small byte-level BPE tokenizer trained on the embedded corpus, saved as a standard HF tokenizer.

Digits are split one per token so that the tiny model can learn column arithmetic, and the chat template
renders the SPIN paper's plain prompt format (``### Instruction: ... ### Response:``) with a newline after each
header, so that a prompt always ends on a token boundary: the tokens of "prompt" followed by the tokens of
"response" equal the tokens of "prompt + response", in training, generation and lm-eval alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

# The assistant turn repeats the response header so that TRL's prompt/completion split (prompt rendered with
# add_generation_prompt=True, then prompt + completion rendered whole) sees the prompt as an exact prefix.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ '### Response:\\n' }}"
    "{%- generation -%}{{ message['content'] + eos_token }}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Response:\\n' }}{%- endif -%}"
)


def render_exchange(prompt: str, response: str) -> str:
    """The text CHAT_TEMPLATE renders for one user/assistant exchange, less the end-of-sequence token: the
    tokenizer is trained on it, before there is a tokenizer to apply the template with."""
    return f"### Instruction:\n{prompt}\n\n### Response:\n{response}"


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",  # decoder-only generation pads on the left
        model_max_length=model_max_length,
        **SPECIAL,
    )
