"""Evaluation on frozen features: cached features, attentive / linear / k-NN probes (``vjepa2 probe``,
``vjepa2 classify``), action anticipation with the predictor, and cluster-based data curation (``vjepa2 curate``)."""
