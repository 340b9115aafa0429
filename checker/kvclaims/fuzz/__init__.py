"""Fuzzing runtimes and checkers (ARCHITECTURE.md: strategies → runtime → events → check → shrink).

`kvclaims.fuzz.strategies` holds the public Hypothesis strategies; `kvclaims.fuzz.driver` the search
behind `kvclaims fuzz`. See docs/fuzz.md.
"""
