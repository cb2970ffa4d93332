"""The /stock_data/ resource."""
