"""The simulator: a polar day with known truth, written in the real product layouts."""
