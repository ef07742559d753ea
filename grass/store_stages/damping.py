"""How pipeline=store sets its damping, from the config alone (so every stage agrees and fingerprints it).

- "none": the tda has no preconditioner (grad_dot: Hessian = identity).
- "validation": chosen from damping_grid by LDS on the seeded validation split of the queries, as pipeline=lds
  does (SPEC 1.1); needs queries with ground truth: the dataset's query blocks of the fine-tuned full-data model
  (store.model=checkpoint, no store.prompts_dir), whose subset models pipeline=lds trained.
- "fixed": store.damping.
store.damping_from=auto is "validation" when the queries have ground truth and "fixed" otherwise; "validation"
without ground truth is an error, never a silent fixed damping.
"""

from omegaconf import DictConfig

from grass.errors import GrassError

DAMPING_FROM = ("auto", "validation", "fixed")


def queries_have_truth(cfg: DictConfig) -> bool:
    """The store's queries are the dataset's query blocks of the model pipeline=lds scores against ground truth."""
    return cfg.store.model == "checkpoint" and cfg.store.prompts_dir is None


def damping_mode(cfg: DictConfig) -> str:
    """"none" | "validation" | "fixed" (see the module docstring); GrassError for an impossible choice."""
    if cfg.tda.damping == "none":
        return "none"
    choice = cfg.store.damping_from
    if choice not in DAMPING_FROM:
        raise GrassError(f"store.damping_from={choice!r} is not allowed: one of {list(DAMPING_FROM)}")
    if choice == "auto":
        return "validation" if queries_have_truth(cfg) else "fixed"
    if choice == "validation" and not queries_have_truth(cfg):
        raise GrassError(f"store.damping_from=validation chooses the damping by LDS on the dataset's query blocks, "
                         f"which have ground truth only for store.model=checkpoint without store.prompts_dir (now "
                         f"store.model={cfg.store.model}, store.prompts_dir={cfg.store.prompts_dir}); use "
                         f"store.damping_from=fixed with store.damping")
    return choice


def damping_setting(cfg: DictConfig):
    """What fixes the damping, for fingerprints: None, store.damping, or the grid and its validation split."""
    mode = damping_mode(cfg)
    if mode == "none":
        return None
    if mode == "fixed":
        return cfg.store.damping
    return {"grid": [float(v) for v in cfg.damping_grid], "val_fraction": cfg.lds.val_fraction,
            "num_subsets": cfg.lds.num_subsets}
