"""Tables and plots built from the metrics.json files that runs leave under outputs/."""
