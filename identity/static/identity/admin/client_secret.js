// The one-time client secret page: copy buttons, and closing the admin's "add" popup.
"use strict";
{
    for (const button of document.querySelectorAll("button[data-copy]")) {
        if (!navigator.clipboard) {
            continue;
        }
        button.hidden = false;
        button.addEventListener("click", () => {
            navigator.clipboard.writeText(document.getElementById(button.dataset.copy).value);
        });
    }
    const done = document.getElementById("client-secret-done");
    if (done) {
        done.addEventListener("click", () => {
            const data = JSON.parse(done.dataset.popupResponse);
            if (data.action === "change") {
                window.opener.dismissChangeRelatedObjectPopup(window, data.value, data.obj, data.new_value);
            } else {
                window.opener.dismissAddRelatedObjectPopup(window, data.value, data.obj);
            }
        });
    }
}
