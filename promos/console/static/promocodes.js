// Promo codes: a live preview and capacity check while the generation form is filled in, and
// a generation's progress without reloading. The pages work without this file (a "Preview"
// button, the server's own checks, a page that refreshes itself).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("generate");
  if (form) {
    previewWhileTyping(form);
  }
  const job = document.getElementById("job");
  if (job && job.dataset.status === "running") {
    followProgress(job);
  }
});

const SHAPE = ["pattern", "charset", "prefix", "postfix", "count"];

function previewWhileTyping(form) {
  const region = document.getElementById("preview");
  let timer = null;
  let problems = {};
  let asked = 0;

  const showError = (name, message) => {
    const field = form.elements[name];
    const id = `${name}-live-error`;
    let note = document.getElementById(id);
    if (!message) {
      if (note) {
        note.remove();
        field.removeAttribute("aria-invalid");
      }
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "field-error";
      note.id = id;
      field.closest(".field").appendChild(note);
      field.setAttribute("aria-describedby", `${field.getAttribute("aria-describedby") || ""} ${id}`.trim());
    }
    note.textContent = message;
    field.setAttribute("aria-invalid", "true");
  };

  const ask = async () => {
    const query = new URLSearchParams();
    for (const name of SHAPE) {
      query.set(name, form.elements[name].value);
    }
    if (!form.elements.pattern.value) {
      return;
    }
    const mine = ++asked;
    let answer;
    try {
      const response = await fetch(`${form.dataset.preview}?${query}`, { credentials: "same-origin" });
      if (!response.ok) {
        return;
      }
      answer = await response.json();
    } catch {
      return; // the server's own check still answers on submit
    }
    if (mine !== asked) {
      return; // a later question is on its way
    }
    problems = answer.errors;
    for (const name of SHAPE) {
      showError(name, problems[name]);
    }
    region.replaceChildren();
    if (answer.samples.length) {
      const title = document.createElement("p");
      title.className = "preview-title";
      title.textContent = `Sample codes (the pattern makes ${answer.capacity.toLocaleString("en")} different codes; one generation may use up to ${answer.most.toLocaleString("en")})`;
      const list = document.createElement("ul");
      list.className = "samples";
      for (const sample of answer.samples) {
        const item = document.createElement("li");
        const code = document.createElement("code");
        code.textContent = sample;
        item.appendChild(code);
        list.appendChild(item);
      }
      region.append(title, list);
    }
  };

  form.addEventListener("input", (event) => {
    if (SHAPE.includes(event.target.name)) {
      clearTimeout(timer);
      timer = setTimeout(ask, 200);
    }
  });
  form.addEventListener("submit", (event) => {
    const generating = !event.submitter || event.submitter.value !== "preview";
    const first = SHAPE.find((name) => problems[name]);
    if (generating && first) {
      event.preventDefault();
      form.elements[first].focus();
    }
  });
  if (form.elements.pattern.value) {
    ask();
  }
}

function followProgress(job) {
  const bar = document.getElementById("job-progress");
  const count = document.getElementById("job-count");
  const poll = async () => {
    try {
      const response = await fetch(job.dataset.progress, { credentials: "same-origin" });
      if (response.ok) {
        const state = await response.json();
        if (state.status !== "running") {
          window.location.reload();
          return;
        }
        bar.value = state.done;
        count.textContent = `${state.done.toLocaleString("en")} of ${state.count.toLocaleString("en")} codes (${state.percent}%)`;
      }
    } catch {
      // try again at the next tick
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 500);
}
