"""Pooled caption embeddings for TrajLoom-Flow (reference §3.10): any transformers text encoder (UMT5-XXL in the
paper), the last hidden state mean-pooled over the valid (non-padding) tokens."""

from __future__ import annotations

from typing import List

import torch


@torch.no_grad()
def encode_pooled_text(text_encoder, tokenizer, prompts: List[str], *, device=None, max_length: int = 128) -> torch.Tensor:
    """``[B, D]`` float32 masked mean of ``text_encoder(...).last_hidden_state`` for ``prompts``.

    ``max_length`` 128 is the official ``text_len``; an empty caption still encodes its end-of-sequence token.
    """
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"`prompts` must be a list of strings, got {type(prompts).__name__}")
    device = device or next(text_encoder.parameters()).device
    tok = tokenizer(list(prompts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
    if ids.shape[1] == 0:  # T5/UMT5 tokenizers append EOS, so only a tokenizer without one gets here
        raise ValueError("`tokenizer` produced no tokens for `prompts` (an empty caption needs a tokenizer that appends "
                         "an end-of-sequence token, as T5/UMT5 tokenizers do)")
    hidden = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    m = mask.unsqueeze(-1).float()
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
