"""The queries of a staged attribute run: the dataset's query examples, or a folder of prompt files.

A prompt file (*.txt, sorted by name) becomes one query block: its text tokenized with the dataset's
tokenizer, cut to dataset.block_size tokens, padding masked out, differentiated with the run's target.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from grass.capture.linear import LinearCapture
from grass.data.text import TextBlocks, decode_block, lm_batch
from grass.data.tokenizer import resolve_tokenizer
from grass.errors import GrassError
from grass.staged.features import capture_batches, capture_rows
from grass.stages.context import RunContext


@dataclass
class Queries:
    names: list[str]  # one label per query (prompt file name or dataset source)
    texts: list[str]  # what the report shows for each query
    features: dict[str, torch.Tensor]  # {layer: [m, K_l]}
    token_ids: list[list[int]]  # fingerprints the queries: scores are only reused for the same ones


def tokenizer_of(data: TextBlocks):
    return resolve_tokenizer(data.tokenizer_name)[0]


def prompt_blocks(data: TextBlocks, folder: Path) -> tuple[list[str], list[str], torch.Tensor, torch.Tensor]:
    """(names, texts, ids [m, T], mask [m, T]) of the *.txt prompts in `folder`, in model token ids."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise GrassError(f"store.prompts_dir={folder}: no *.txt prompt files there")
    tokenizer, block = tokenizer_of(data), data.block_size
    to_model = None if data.vocab_map is None else {int(t): i for i, t in enumerate(data.vocab_map.tolist())}
    ids = torch.zeros(len(files), block, dtype=torch.int64)
    mask = torch.zeros(len(files), block, dtype=torch.int64)
    names, texts = [], []
    for row, path in enumerate(files):
        text = path.read_text(encoding="utf-8").strip()
        tokens = tokenizer.encode(text)[:block]
        if len(tokens) < 2:
            raise GrassError(f"prompt {path} has {len(tokens)} tokens; a query needs at least 2 (one prediction)")
        if to_model is not None:
            unknown = [t for t in tokens if t not in to_model]
            if unknown:
                raise GrassError(f"prompt {path} uses tokens {unknown[:5]} that the model's compacted vocabulary "
                                 f"(dataset.compact_vocab=true) does not have; reword it or use a full-vocabulary "
                                 f"model")
            tokens = [to_model[t] for t in tokens]
        ids[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens)] = 1
        names.append(path.name)
        texts.append(text)
    return names, texts, ids, mask


def query_features(ctx: RunContext, capture: LinearCapture) -> Queries:
    folder = ctx.cfg.store.prompts_dir
    data = ctx.data
    if folder is None:
        m = ctx.task.n_query
        feats = capture_rows(ctx, capture, "query", torch.arange(m))
        names = list(data.query_sources) if getattr(data, "query_sources", None) else [f"query {j}" for j in range(m)]
        if isinstance(data, TextBlocks):
            tok = tokenizer_of(data)
            texts = [decode_block(tok, data.query_ids[j], data.query_mask[j], vocab_map=data.vocab_map)
                     for j in range(m)]
            ids = [data.query_ids[j][data.query_mask[j] != 0].tolist() for j in range(m)]
        else:
            texts, ids = names, [[j] for j in range(m)]
        return Queries(names, texts, feats, ids)
    if not isinstance(data, TextBlocks):
        raise GrassError("store.prompts_dir needs a language-model dataset (prompts are text)")
    names, texts, ids, mask = prompt_blocks(data, Path(folder))
    bs = ctx.cfg.hardware.capture_batch_size
    batches = ({k: v.to(ctx.device) for k, v in lm_batch(ids[s:s + bs], mask[s:s + bs]).items()}
               for s in range(0, len(names), bs))
    feats = capture_batches(capture, batches, [f"prompt {name}" for name in names])
    return Queries(names, texts, feats, [ids[j][mask[j] != 0].tolist() for j in range(len(names))])
