"""Linear datamodeling score (LDS): Spearman of subset-summed scores against retrained ground truth."""
