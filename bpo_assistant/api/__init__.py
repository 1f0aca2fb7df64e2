"""Ways for other tools to ask the assistant: the HTTP API (http.py, openai_compat.py) served beside the chat,
and the MCP server (mcp_server.py) on stdio."""
