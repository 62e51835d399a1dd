"""A learned reader: how likely a blind reader is to find a narrated line sensible.

The blind readings of the narration bench (docs/narration.md: each model line shown with its
item, speaker and previous line, judged sensible or not and natural 1-5 by a reader who did
not know which lines were the model's) are thousands of judged lines of the narrator's own
writing. ``training/line_reader.py`` fits a logistic regression on them, over word n-grams of
the line with its price masked, the speaker's role and a length bin; the weights ship as
``bot/data/line_reader.json``. A hybrid agent with ``pick = "reader"`` says the passing
candidate this reader scores highest (bot/negotiation/llm_agent.py).

Pure: no model, no I/O beyond reading the weights file it is given.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

FORMAT = "haggle-line-reader/1"
NGRAMS = 3
LENGTH_BIN = 15   # characters per length bin
LENGTH_BINS = 5   # the last bin holds every longer line

_PRICE = re.compile(r"\$\s*\d[\d,]*(?:\.\d+)?")
_TOKEN = re.compile(r"[a-z$'_]+|[?!.,]")


def reading_features(line: str, role: str) -> list[str]:
    """The features a reading is fit on: the role, the line's word 1-3-grams with every price
    written ``$p`` (a reader judges the words, and prices vary by item), and a bin of the
    masked line's length."""
    masked = _PRICE.sub("$p", line.lower().strip())
    seq = [f"role_{role}", *_TOKEN.findall(masked), f"len{min(len(masked) // LENGTH_BIN, LENGTH_BINS)}"]
    return sorted({" ".join(seq[i:i + n]) for n in range(1, NGRAMS + 1) for i in range(len(seq) - n + 1)})


def chance(log_odds: float) -> float:
    """A score's probability."""
    return 1 / (1 + math.exp(-log_odds))


@dataclass(frozen=True)
class LineReader:
    """A linear model over reading_features: score = bias + the features' weights (log-odds)."""

    weights: dict[str, float]
    bias: float
    fit: dict[str, Any] = field(default_factory=dict)

    def score(self, line: str, role: str) -> float:
        """Log-odds that a blind reader finds ``line``, said by ``role``, sensible."""
        return self.bias + sum(self.weights.get(f, 0.0) for f in reading_features(line, role))

    def probability(self, line: str, role: str) -> float:
        return chance(self.score(line, role))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "ngrams": NGRAMS, "length_bin": LENGTH_BIN, "length_bins": LENGTH_BINS,
                "bias": self.bias, "fit": self.fit,
                "weights": dict(sorted(self.weights.items()))}

    @classmethod
    def from_json(cls, data: Any, where: str) -> LineReader:
        ok = (isinstance(data, dict) and data.get("format") == FORMAT
              and (data.get("ngrams"), data.get("length_bin"), data.get("length_bins"))
              == (NGRAMS, LENGTH_BIN, LENGTH_BINS)
              and isinstance(data.get("weights"), dict) and isinstance(data.get("bias"), int | float))
        if not ok:
            raise ConfigError(f"{where} is not a {FORMAT} file with this version's features "
                              f"({NGRAMS}-grams, length bins of {LENGTH_BIN}); refit it with "
                              f"`python -m training.line_reader --out {where}`")
        return cls({str(k): float(v) for k, v in data["weights"].items()}, float(data["bias"]),
                   dict(data.get("fit") or {}))

    @classmethod
    def load(cls, path: Path | None = None) -> LineReader:
        """The reader at ``path``, or the one shipped in the package."""
        if path is None:
            text = resources.files("bot").joinpath("data/line_reader.json").read_text(encoding="utf-8")
            where = "bot/data/line_reader.json"
        else:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read the line reader {path}: {exc.strerror}; give a file "
                                  "written by `python -m training.line_reader`") from None
            where = str(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where} is not JSON ({exc}); refit it with "
                              "`python -m training.line_reader`") from None
        return cls.from_json(data, where)
