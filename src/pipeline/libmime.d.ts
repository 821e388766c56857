// The part of libmime (5.3, no typings of its own) that transform.ts uses.
declare module 'libmime' {
  const libmime: {
    /** RFC 2047: every encoded word of `value` decoded; throws on what it cannot decode. */
    decodeWords(value: string): string;
  };
  export default libmime;
}
