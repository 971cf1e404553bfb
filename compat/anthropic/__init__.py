"""The Anthropic wire dialect (Messages API inbound): parses Anthropic requests into engine types and encodes
engine events as Anthropic's events and errors. Shares field validation and the error taxonomy with
`compat.openai` through `compat`.
"""
