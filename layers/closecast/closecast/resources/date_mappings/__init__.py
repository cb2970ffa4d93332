"""The /date_mappings/ resource."""
