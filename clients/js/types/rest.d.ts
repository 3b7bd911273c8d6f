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
    /**
     * @param {string} base the server's HTTP origin (and path prefix, if any)
     * @param {typeof fetch} fetchImpl
     * @param {() => Promise<string | null>} token gives the bearer token
     */
    constructor(base: string, fetchImpl: typeof fetch, token: () => Promise<string | null>);
    /**
     * Calls `/api/v1{path}` and returns its JSON answer (`null` for 204).
     * @param {string} method
     * @param {string} path e.g. `/rooms`
     * @param {any} [body] JSON-encoded, or sent as is when it is `FormData`
     * @returns {Promise<any>}
     */
    request(method: string, path: string, body?: any): Promise<any>;
    /**
     * Downloads an attachment with the token (its URL needs one, so an
     * `<img src>` cannot load it directly: show `URL.createObjectURL(blob)`).
     * @param {Attachment | string} attachment the attachment or its `url`
     * @returns {Promise<Blob>}
     */
    download(attachment: Attachment | string): Promise<Blob>;
    /**
     * Uploads a file (`POST /api/v1/attachments`, multipart field `file`).
     * @param {UploadBody} file
     * @param {{ name?: string, contentType?: string }} [options] the name and
     *   type, when `file` is not a `File` that has them
     * @returns {Promise<Attachment>}
     */
    upload(file: UploadBody, { name, contentType }?: {
        name?: string;
        contentType?: string;
    }): Promise<Attachment>;
    #private;
}
/**
 * What {@link Rest#upload} accepts: a `Blob`/`File` (a browser's file input),
 * or bytes or text with a name and type given separately.
 */
export type UploadBody = Blob | ArrayBuffer | ArrayBufferView | string;
/**
 * An attachment as `POST /api/v1/attachments` answers it; `id` goes into a
 * message's `attachment_id`.
 */
export type Attachment = {
    id: string;
    url: string;
    content_type: string;
    size: number;
    name: string;
};
