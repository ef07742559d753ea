"""finetune.source=dattri: the paper's own subset models and LDS ground truth, from dattri's benchmark.

settings.py  which benchmark setting a config maps to, what the data must be, the models key
fetch.py     the three files of a setting: local mirror, huggingface_hub cache or download; fast offline errors
convert.py   dattri's files -> tensors grass uses (state-dict keys, subset masks, ground truth), no I/O policy
importer.py  stage finetune with source=dattri: writes them as grass artifacts (subsets, models, ground truth)
"""
