// The trinfer playground: one page, no dependencies. It talks to the same OpenAI-compatible API as any
// client: GET /v1/models for the picker, POST /v1/chat/completions with stream: true for answers (SSE read
// through fetch, so the API key can travel as a header and Stop can abort the request, which cancels the
// generation on the server). The key, when the server needs one, lives in sessionStorage only.
"use strict";

const KEY_STORAGE = "trinfer.apiKey";
const $ = (id) => document.getElementById(id);
const state = { messages: [], controller: null };

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

async function describeFailure(response) {
  // Every trinfer error has OpenAI's body {"error": {"message", "type", "param", "code"}}.
  let message = response.statusText || "request failed";
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code;
    }
  } catch (_) { /* not JSON: keep the status text */ }
  let text = "HTTP " + response.status + ": " + message + (code ? " (" + code + ")" : "");
  const retry = response.headers.get("retry-after");
  if (retry) text += " - retry after " + retry + " s";
  if (response.status === 401) $("key-row").hidden = false;
  return text;
}

async function loadModels() {
  const select = $("model");
  const previous = select.value;
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (err) {
    showError("Cannot reach the server: " + err.message);
    return;
  }
  if (!response.ok) {
    showError(await describeFailure(response));
    return;
  }
  const body = await response.json();
  select.replaceChildren();
  for (const model of body.data) {
    const option = document.createElement("option");
    option.value = option.textContent = model.id;
    select.append(option);
  }
  if (previous && body.data.some((m) => m.id === previous)) select.value = previous;
  showError("");
}

function addTurn(role, text) {
  const turn = document.createElement("div");
  turn.className = "turn " + role;
  const content = document.createElement("span");
  content.className = "content";
  content.textContent = text;
  turn.append(content);
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  return turn;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.messages);
  const body = {
    model: $("model").value,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  const temperature = $("temperature").value;
  if (temperature !== "") body.temperature = Number(temperature);
  const maxTokens = $("max-tokens").value;
  if (maxTokens !== "") body.max_tokens = Number(maxTokens);
  return body;
}

// Reads an SSE body and calls onEvent with each parsed `data:` payload (or "[DONE]").
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      onEvent(data === "[DONE]" ? data : JSON.parse(data));
    }
  }
}

function formatStats(stats) {
  const parts = [];
  if (stats.ttft !== null) parts.push("TTFT " + Math.round(stats.ttft) + " ms");
  // Decode speed: the tokens after the first one, over the time since the first one arrived.
  if (stats.tokens > 1 && stats.decodeMs > 0) {
    parts.push(((stats.tokens - 1) / (stats.decodeMs / 1000)).toFixed(1) + " tok/s");
  }
  if (stats.tokens > 0) parts.push(stats.tokens + " tokens");
  if (stats.ended) parts.push(stats.ended);
  return parts.join(" \u00b7 ");
}

async function send(text) {
  showError("");
  state.messages.push({ role: "user", content: text });
  const userTurn = addTurn("user", text);
  const turn = addTurn("assistant", "");
  const content = turn.querySelector(".content");
  const statsLine = document.createElement("span");
  statsLine.className = "stats";
  turn.append(statsLine);
  const stats = { ttft: null, tokens: 0, chunks: 0, decodeMs: 0, ended: "" };
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  const started = performance.now();
  let answer = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(requestBody()),
      signal: controller.signal,
    });
    if (!response.ok) {
      // Refused before any answer: take the turn back, so the user can fix the settings and send it again.
      turn.remove();
      userTurn.remove();
      state.messages.pop();
      $("prompt").value = text;
      showError(await describeFailure(response));
      return;
    }
    await readEvents(response, (event) => {
      if (event === "[DONE]") return;
      if (event.error) throw new Error("The model failed mid-answer: " + event.error.message);
      if (event.usage) stats.tokens = event.usage.completion_tokens;
      for (const choice of event.choices || []) {
        const piece = choice.delta && choice.delta.content;
        if (!piece) continue;
        const now = performance.now();
        if (stats.ttft === null) {
          stats.ttft = now - started;
          stats.firstAt = now;
        }
        stats.chunks += 1;
        stats.decodeMs = now - stats.firstAt;
        answer += piece;
        content.textContent = answer;
      }
    });
    if (!stats.tokens) stats.tokens = stats.chunks;
  } catch (err) {
    if (err.name === "AbortError") {
      stats.ended = "stopped";
      stats.tokens = stats.chunks;
    } else {
      showError(err.message);
      stats.ended = "failed";
    }
  } finally {
    state.controller = null;
    setBusy(false);
    statsLine.textContent = formatStats(stats);
    turn.scrollIntoView({ block: "end" });
  }
  if (answer) state.messages.push({ role: "assistant", content: answer });
}

function init() {
  const key = apiKey();
  if (key) {
    $("api-key").value = key;
    $("key-row").hidden = false;
  }
  $("save-key").addEventListener("click", () => {
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    loadModels();
  });
  $("reload-models").addEventListener("click", loadModels);
  $("clear").addEventListener("click", () => {
    state.messages = [];
    $("conversation").replaceChildren();
    showError("");
  });
  $("stop").addEventListener("click", () => {
    if (state.controller) state.controller.abort();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    if (!$("model").value) {
      showError("No model selected: the model list did not load.");
      return;
    }
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
