"""Pipeline stages: finetune -> groundtruth -> attribute -> lds. Each reads and writes artifacts."""
