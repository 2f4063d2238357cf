// The hello-world handler of the JS benchmark, Workers/Bun shape.
export default {
  fetch() {
    return new Response('Hello, World!');
  },
};
