"""The survey as data: its answers stored once, whatever page or text thread they came
through, and the facts of a call results are reported by."""
