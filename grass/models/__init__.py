"""Model builders and the LightningModule that (re)trains them."""
