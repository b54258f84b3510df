"""What pages cost: the pricing table, pricing of rows and runs (direct and fully loaded), and the cost
report over committed output. Pure logic over PAGES_SCHEMA tables and run summaries; no Ray."""
