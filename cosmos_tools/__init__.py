"""cosmos-tools: PNG renders to Cosmos-Transfer1 runs on a rented GPU box, and back."""

__version__ = "0.1.0"
