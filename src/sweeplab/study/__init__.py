"""`hydra/sweeper=sweeplab`: a study on current Optuna, asked and told trial by trial, its record in MLflow."""
