"""Code pools: batches of pre-loaded unique codes, issued one per request."""
