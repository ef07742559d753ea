"""The queries of a staged attribute run: the dataset's query examples, or a folder of prompt files.

A prompt file (*.txt, sorted by name) becomes one query block: its UTF-8 text tokenized with the dataset's
tokenizer, cut to dataset.block_size tokens (with a warning, and a note in the report), padding masked out,
differentiated with the run's target. The report shows the tokens actually attributed, decoded.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from grass.data.local_text import read_text
from grass.data.text import TextBlocks, decode_block, lm_batch
from grass.data.tokenizer import resolve_tokenizer
from grass.errors import GrassError
from grass.run_context import RunContext
from grass.store_stages.features import capture_batches
from grass.store_stages.featurizer import CheckpointFeaturizer, store_featurizer

log = logging.getLogger(__name__)


@dataclass
class Queries:
    names: list[str]  # one label per query (prompt file name or dataset source)
    texts: list[str]  # what the report shows for each query: the text of the tokens attributed
    notes: list[str]  # per query, what the report adds below the text ("" = nothing), e.g. that a prompt was cut
    features: dict[str, torch.Tensor]  # {layer: [m, K_l]}
    token_ids: list[list[int]]  # fingerprints the queries: scores are only reused for the same ones


def tokenizer_of(data: TextBlocks):
    return resolve_tokenizer(data.tokenizer_name)[0]


def prompt_blocks(data: TextBlocks, folder: Path) -> tuple[list[str], list[str], list[str], torch.Tensor,
                                                            torch.Tensor]:
    """(names, texts, notes, ids [m, T], mask [m, T]) of the *.txt prompts in `folder`, ids in model token ids.

    texts: each prompt's kept tokens decoded (what is attributed); notes: "" or, for a prompt longer than
    T = block_size tokens, that only its first T tokens are attributed (also logged as a warning).
    Raises GrassError for a folder without prompts, a file that is not UTF-8 text (see
    grass.data.local_text.read_text), a prompt of fewer than 2 tokens, or tokens a compacted vocabulary lacks.
    """
    files = sorted(f for f in Path(folder).glob("*.txt") if f.is_file())
    if not files:
        raise GrassError(f"store.prompts_dir={folder}: no *.txt prompt files there")
    tokenizer, block = tokenizer_of(data), data.block_size
    to_model = None if data.vocab_map is None else {int(t): i for i, t in enumerate(data.vocab_map.tolist())}
    ids = torch.zeros(len(files), block, dtype=torch.int64)
    mask = torch.zeros(len(files), block, dtype=torch.int64)
    names, texts, notes = [], [], []
    for row, path in enumerate(files):
        tokens = tokenizer.encode(read_text(path).strip())
        note = ""
        if len(tokens) > block:
            log.warning("prompt %s has %d tokens, more than the block size %d (dataset.block_size): only its "
                        "first %d are attributed", path, len(tokens), block, block)
            note = f"cut to the block size: the first {block} of its {len(tokens)} tokens are attributed"
            tokens = tokens[:block]
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
        texts.append(decode_block(tokenizer, ids[row], mask[row], vocab_map=data.vocab_map))
        notes.append(note)
    return names, texts, notes, ids, mask


def query_features(ctx: RunContext, featurizer: CheckpointFeaturizer) -> Queries:
    """The dataset's query examples, or the prompts of store.prompts_dir (language models: linear capture)."""
    folder = ctx.cfg.store.prompts_dir
    data = ctx.data
    if folder is None:
        m = ctx.task.n_query
        feats = featurizer.rows("query", torch.arange(m))
        names = list(data.query_sources) if getattr(data, "query_sources", None) else [f"query {j}" for j in range(m)]
        if isinstance(data, TextBlocks):
            tok = tokenizer_of(data)
            texts = [decode_block(tok, data.query_ids[j], data.query_mask[j], vocab_map=data.vocab_map)
                     for j in range(m)]
            ids = [data.query_ids[j][data.query_mask[j] != 0].tolist() for j in range(m)]
        else:
            texts, ids = names, [[j] for j in range(m)]
        return Queries(names, texts, [""] * m, feats, ids)
    if not isinstance(data, TextBlocks):
        raise GrassError("store.prompts_dir needs a language-model dataset (prompts are text)")
    names, texts, notes, ids, mask = prompt_blocks(data, Path(folder))
    bs = ctx.cfg.hardware.capture_batch_size
    batches = ({k: v.to(ctx.device) for k, v in lm_batch(ids[s:s + bs], mask[s:s + bs]).items()}
               for s in range(0, len(names), bs))
    feats = capture_batches(featurizer.capture, batches, [f"prompt {name}" for name in names])
    return Queries(names, texts, notes, feats, [ids[j][mask[j] != 0].tolist() for j in range(len(names))])


def capture_queries(ctx: RunContext) -> Queries:
    """The run's queries (query_features) from the attributed model with the cache's compressors."""
    return query_features(ctx, store_featurizer(ctx))
