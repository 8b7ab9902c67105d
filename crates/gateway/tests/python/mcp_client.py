"""Drives memory-gateway with the official Python MCP SDK (`mcp` on PyPI).

Usage:
  mcp_client.py http <url> <token> <scenario-json>
  mcp_client.py stdio <scenario-json> <command> [args...]

The scenario is a JSON list of tool calls: {"tool": name, "arguments": {...}}.
The script lists the tools, runs each call in order on one session, and
prints one JSON object: {"tools": [{name, description, inputSchema}],
"calls": [{"tool", "is_error", "text"}]}. Any failure of the SDK itself
(connection, protocol) exits non-zero with the traceback.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def run_session(session, scenario):
    await session.initialize()
    listed = await session.list_tools()
    tools = [
        {
            "name": t.name,
            "description": t.description,
            "inputSchema": t.inputSchema if hasattr(t, "inputSchema") else t.input_schema,
        }
        for t in listed.tools
    ]
    calls = []
    for step in scenario:
        result = await session.call_tool(step["tool"], step.get("arguments") or {})
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        is_error = getattr(result, "isError", None)
        if is_error is None:
            is_error = getattr(result, "is_error", False)
        calls.append({"tool": step["tool"], "is_error": bool(is_error), "text": "\n".join(texts)})
    return {"tools": tools, "calls": calls}


async def over_http(url, token, scenario):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                return await run_session(session, scenario)


async def over_stdio(command, args, scenario):
    params = StdioServerParameters(command=command, args=args)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await run_session(session, scenario)


def main():
    mode = sys.argv[1]
    if mode == "http":
        url, token, scenario = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        out = asyncio.run(over_http(url, token, scenario))
    elif mode == "stdio":
        scenario = json.loads(sys.argv[2])
        out = asyncio.run(over_stdio(sys.argv[3], sys.argv[4:], scenario))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
