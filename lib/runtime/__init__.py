"""What a function handler sees: its context (``context``) and how it is declared (``spec``)."""
