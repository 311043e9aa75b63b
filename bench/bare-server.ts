// The machine's ceiling for Node (issue 6): a bare node:http server answering a fixed JSON body, in a process of its
// own as Muster's server is, so the load generator does not share its thread.
//   node --import tsx bench/bare-server.ts <port> <answer>   (prints "listening" once it accepts connections)
import { createServer } from 'node:http';

const [port, sample] = [Number(process.argv[2]), process.argv[3] ?? '{}'];
const length = Buffer.byteLength(sample);
const bare = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': length }).end(sample));
});
bare.listen(port, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => bare.close(() => process.exit(0)));
