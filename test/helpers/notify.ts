// A NOTIFY_SOCKET receiver for tests. Node has no unix datagram sockets, so a tiny python3 process
// binds the socket and prints each datagram as a JSON line.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';

const RECEIVER = `
import json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps("bound"), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode()), flush=True)
`;

export class NotifyReceiver {
  readonly messages: string[] = [];
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;

  constructor(readonly path: string) {
    fs.rmSync(path, { force: true });
    this.child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let bound: () => void = () => {};
    this.ready = new Promise((resolve) => {
      bound = resolve;
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl)) as string;
        buf = buf.slice(nl + 1);
        if (msg === 'bound') bound();
        else this.messages.push(msg);
      }
    });
  }

  close(): void {
    this.child.kill('SIGKILL');
    fs.rmSync(this.path, { force: true });
  }
}
