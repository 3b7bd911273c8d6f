// The REST calls a front-end needs besides the socket: uploads and rooms.

import { ConfabError } from "./errors.js";

/**
 * What {@link Rest#upload} accepts: a `Blob`/`File` (a browser's file input),
 * or bytes or text with a name and type given separately.
 * @typedef {Blob | ArrayBuffer | ArrayBufferView | string} UploadBody
 */

/**
 * An attachment as `POST /api/v1/attachments` answers it; `id` goes into a
 * message's `attachment_id`.
 * @typedef {{ id: string, url: string, content_type: string, size: number, name: string }} Attachment
 */

/**
 * A thin `fetch` wrapper for `/api/v1` with the client's token, turning the
 * server's error body (`{"error": {code, message}}`) into a
 * {@link ConfabError} so REST and socket failures are handled alike.
 */
export class Rest {
  #base;
  #fetch;
  #token;

  /**
   * @param {string} base the server's HTTP origin (and path prefix, if any)
   * @param {typeof fetch} fetchImpl
   * @param {() => Promise<string | null>} token gives the bearer token
   */
  constructor(base, fetchImpl, token) {
    this.#base = base;
    this.#fetch = fetchImpl;
    this.#token = token;
  }

  /**
   * Calls `/api/v1{path}` and returns its JSON answer (`null` for 204).
   * @param {string} method
   * @param {string} path e.g. `/rooms`
   * @param {any} [body] JSON-encoded, or sent as is when it is `FormData`
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    if (!this.#fetch) throw new ConfabError("unsupported", "no fetch: pass the fetch option");
    /** @type {Record<string, string>} */
    const headers = {};
    const token = await this.#token();
    if (token) headers.authorization = `Bearer ${token}`;
    let payload = body;
    if (body !== undefined && !(typeof FormData !== "undefined" && body instanceof FormData)) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await this.#fetch(`${this.#base}/api/v1${path}`, { method, headers, body: payload });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = json?.error ?? {};
      throw new ConfabError(error.code ?? "http_error", error.message ?? `HTTP ${response.status}`, {
        status: response.status,
        retryAfterMs: error.retry_after_ms,
      });
    }
    return json;
  }

  /**
   * Downloads an attachment with the token (its URL needs one, so an
   * `<img src>` cannot load it directly: show `URL.createObjectURL(blob)`).
   * @param {Attachment | string} attachment the attachment or its `url`
   * @returns {Promise<Blob>}
   */
  async download(attachment) {
    const url = typeof attachment === "string" ? attachment : attachment.url;
    /** @type {Record<string, string>} */
    const headers = {};
    const token = await this.#token();
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await this.#fetch(new URL(url, this.#base + "/").href, { headers });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ConfabError(body?.error?.code ?? "http_error", body?.error?.message ?? `HTTP ${response.status}`, { status: response.status });
    }
    return response.blob();
  }

  /**
   * Uploads a file (`POST /api/v1/attachments`, multipart field `file`).
   * @param {UploadBody} file
   * @param {{ name?: string, contentType?: string }} [options] the name and
   *   type, when `file` is not a `File` that has them
   * @returns {Promise<Attachment>}
   */
  upload(file, { name, contentType } = {}) {
    const blob = file instanceof Blob ? file : new Blob([/** @type {any} */ (file)], { type: contentType ?? "application/octet-stream" });
    const typed = contentType && blob.type !== contentType ? new Blob([blob], { type: contentType }) : blob;
    const form = new FormData();
    form.append("file", typed, name ?? /** @type {any} */ (file).name ?? "file");
    return this.request("POST", "/attachments", form);
  }
}
