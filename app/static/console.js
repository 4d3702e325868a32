// The instance console page: an xterm.js terminal (vendored, see bin/vendor)
// joined to Warren's console socket. Keys go out as binary messages, the
// terminal size as a text message {"resize": [columns, rows]}; the console's
// output comes back as binary messages. A close carries the reason to show.
"use strict";

function openConsole(box) {
  const state = document.getElementById("console-state");
  const terminal = new Terminal({cursorBlink: true, scrollback: 5000});
  const fit = new FitAddon.FitAddon();
  terminal.loadAddon(fit);
  terminal.open(box);
  fit.fit();

  const url = new URL(box.dataset.socket, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("columns", terminal.cols);
  url.searchParams.set("rows", terminal.rows);
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  const send = (message) => { if (socket.readyState === WebSocket.OPEN) socket.send(message); };

  socket.addEventListener("open", () => {
    state.textContent = "Connected. Press Enter if the console shows nothing yet.";
    box.dataset.connected = "true";
    terminal.focus();
  });
  socket.addEventListener("message", (event) => terminal.write(new Uint8Array(event.data)));
  socket.addEventListener("close", (event) => {
    state.textContent = event.reason || "The console was closed.";
    state.className = event.code === 1000 ? "" : "error";
    box.dataset.connected = "false";
    terminal.options.disableStdin = true;
  });
  terminal.onData((data) => send(encoder.encode(data)));
  terminal.onResize(({cols, rows}) => send(JSON.stringify({resize: [cols, rows]})));
  window.addEventListener("resize", () => fit.fit());
  // Leaving the page closes the console: the browser may keep a left page
  // alive (back-forward cache) with its socket open, holding LXD's console.
  window.addEventListener("pagehide", () => socket.close(1000, "page closed"));
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });
}

const consoleBox = document.getElementById("terminal");
if (consoleBox) openConsole(consoleBox);
