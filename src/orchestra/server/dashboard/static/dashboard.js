// Alert buttons: acknowledge or resolve through the REST API (same origin, the session
// cookie or nothing; a JSON body so a cross-site form cannot forge the request).
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.alert-action");
  if (!button) return;
  const status = document.getElementById("status");
  const id = button.dataset.alert;
  const action = button.dataset.action;
  button.disabled = true;
  try {
    const answer = await fetch(`/api/v1/alerts/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({}),
    });
    const body = await answer.json();
    if (!answer.ok) {
      status.textContent = `Could not ${action} ${id}: ${body.error ? body.error.message : answer.status}`;
      button.disabled = false;
      return;
    }
    status.textContent = `Alert ${id} is ${body.state}.`;
    const row = button.closest("tr");
    const cell = row ? row.querySelector("td.state, td:nth-child(4)") : null;
    if (cell) cell.textContent = body.state;
    row.querySelectorAll("button.alert-action").forEach((b) => { b.disabled = true; });
  } catch (error) {
    status.textContent = `Could not ${action} ${id}: ${error}`;
    button.disabled = false;
  }
});
