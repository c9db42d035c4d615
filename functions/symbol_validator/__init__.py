"""``symbol-validator``: anyone checks a symbol's status and filters, and normalizes an order to them."""
