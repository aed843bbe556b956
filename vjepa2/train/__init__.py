"""Training: pretraining (stage 1) and its building blocks (schedules, EMA, checkpoints, distributed)."""
