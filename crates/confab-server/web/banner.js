// The connection banner: connecting, live, reconnecting in N s (with a
// "Retry now" button), from confab-js's `state` events.

import { byId } from "./dom.js";

/**
 * Shows the connection's state at the top of the page.
 * @param {import("./confab/confab.js").ConfabClient} client
 */
export function connectionBanner(client) {
  const banner = byId("banner");
  const text = byId("banner-text");
  const retry = byId("banner-retry");
  const dot = byId("presence-self");
  /** @type {any} */
  let countdown = null;
  /** @type {any} */
  let fade = null;

  retry.onclick = () => client.reconnectNow();
  // The browser says the network is back: no need to wait out the backoff.
  const online = () => client.reconnectNow();
  window.addEventListener("online", online);

  /**
   * @param {string} state `connecting`, `live`, `reconnecting`, `offline` or `closed`
   * @param {string} words
   * @param {boolean} [showRetry]
   */
  const show = (state, words, showRetry = false) => {
    clearTimeout(fade);
    banner.hidden = false;
    banner.dataset.state = state;
    text.textContent = words;
    dot.classList.toggle("online", state === "live");
    dot.title = state === "live" ? "Live" : words;
    retry.hidden = !showRetry;
  };

  client.on("state", (event) => {
    clearInterval(countdown);
    switch (event.state) {
      case "connecting":
        show("connecting", event.attempt ? `Connecting… (attempt ${event.attempt + 1})` : "Connecting…");
        break;
      case "open":
        show("live", "Live");
        // Then it steps aside (still in the DOM, its state kept), and the
        // dot by the user's name says "live".
        fade = setTimeout(() => (banner.dataset.quiet = "true"), 2500);
        banner.dataset.quiet = "false";
        return;
      case "reconnecting": {
        const until = Date.now() + event.delay;
        const tick = () => {
          const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
          const why = navigator.onLine === false ? "You are offline. " : "Connection lost. ";
          show("reconnecting", `${why}Reconnecting in ${s} s…`, true);
        };
        tick();
        countdown = setInterval(tick, 1000);
        break;
      }
      case "closed":
        show("closed", "Disconnected.");
        break;
    }
    banner.dataset.quiet = "false";
  });

  return () => {
    clearInterval(countdown);
    window.removeEventListener("online", online);
  };
}
