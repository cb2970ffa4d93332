"""Market data: schema, Kaggle files, targets."""
