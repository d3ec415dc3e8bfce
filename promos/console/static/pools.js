// Code pools: an upload shows its progress. Without this file the form posts as it is.
"use strict";

function enhanceUpload(form) {
  const box = form.querySelector(".upload-progress");
  const bar = box && box.querySelector("progress");
  const status = box && box.querySelector("[role='status']");
  if (!box || !window.XMLHttpRequest || !window.FormData) {
    return;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type='submit']");
    const request = new XMLHttpRequest();
    box.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading…";
    button.disabled = true;
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) {
        const percent = Math.floor((100 * progress.loaded) / progress.total);
        bar.value = percent;
        status.textContent = `Uploading… ${percent}%`;
      }
    });
    request.upload.addEventListener("load", () => {
      bar.value = 100;
      status.textContent = "Uploaded. Adding the codes…";
    });
    request.addEventListener("load", () => {
      if (request.status === 200 && request.responseURL !== form.action) {
        // Added: the server sent us on to the batch's page.
        window.location.assign(request.responseURL);
        return;
      }
      if (request.status === 413) {
        finish("The file is larger than this server takes (PROMOS_MAX_UPLOAD_BYTES).");
        return;
      }
      // The form again with the error by its field: shown in place of this one.
      const page = new DOMParser().parseFromString(request.responseText, "text/html");
      const fresh = page.querySelector("main");
      if (!fresh) {
        finish(`The upload failed (${request.status}).`);
        return;
      }
      const main = document.querySelector("main");
      main.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
      for (const again of main.querySelectorAll("form[data-upload]")) {
        enhanceUpload(again);
      }
      const invalid = main.querySelector("[aria-invalid='true']");
      if (invalid) {
        invalid.focus();
      }
    });
    request.addEventListener("error", () => finish("The upload was cut off. Try again."));
    function finish(message) {
      status.textContent = message;
      button.disabled = false;
    }
    request.open("POST", form.action);
    request.send(new FormData(form));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-upload]")) {
    enhanceUpload(form);
  }
});
