// The small-POST handler of bench/js-instructions.sh (POST=1): reads the
// request body whole and answers its length.
export default {
  async fetch(request) {
    return new Response(`${(await request.text()).length}\n`);
  },
};
