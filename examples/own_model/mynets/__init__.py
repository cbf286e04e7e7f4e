"""A user's own model and data for sweeplab: `mynets.models.build_small_cnn`, `mynets.data.load_digits`."""
