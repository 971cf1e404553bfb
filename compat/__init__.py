"""Sans-IO translation between OpenAI JSON and the engine types. Imports no trio, quart, hypercorn or backend."""
