// CqlPing: a dependency-free CQL client for the test-cluster scripts.
//
// It speaks the CQL native protocol v4 over a plain socket (OPTIONS, STARTUP,
// QUERY), so a zero exit status proves the node really answers CQL, not just
// that the port is open. No driver, no jars: compiled once by lib.sh with javac
// (or run by the java source launcher).
//
//   java -cp DIR CqlPing [-h HOST] [-p PORT] [-t SECONDS] [-c CONSISTENCY] [-q] CQL
//
// Prints each row on one line, columns separated by a tab (text, ints, uuids,
// inets and booleans decoded; other types as 0x-hex). -q prints only the row count.
// Exit status: 0 success, 1 connection/protocol failure or timeout,
// 2 the server answered with an error (message on stderr), 64 usage.
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;

public final class CqlPing {
    private static final int VERSION = 4;
    private static final int OP_ERROR = 0x00, OP_STARTUP = 0x01, OP_READY = 0x02, OP_AUTHENTICATE = 0x03,
            OP_OPTIONS = 0x05, OP_SUPPORTED = 0x06, OP_QUERY = 0x07, OP_RESULT = 0x08;

    private static final class ServerError extends Exception {
        ServerError(String msg) { super(msg); }
    }

    public static void main(String[] args) {
        String host = "127.0.0.1", cql = null;
        int port = 9042, timeoutSec = 5, consistency = 0x0001; // ONE
        boolean countOnly = false;
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "-h": host = args[++i]; break;
                    case "-p": port = Integer.parseInt(args[++i]); break;
                    case "-t": timeoutSec = Integer.parseInt(args[++i]); break;
                    case "-c": consistency = consistencyCode(args[++i]); break;
                    case "-q": countOnly = true; break;
                    default:
                        if (cql != null) throw new IllegalArgumentException("unexpected argument: " + args[i]);
                        cql = args[i];
                }
            }
            if (cql == null) cql = "SELECT release_version FROM system.local";
        } catch (RuntimeException e) {
            System.err.println("usage: CqlPing [-h HOST] [-p PORT] [-t SECONDS] [-c CONSISTENCY] [-q] CQL (" + e.getMessage() + ")");
            System.exit(64);
        }
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), timeoutSec * 1000);
            s.setSoTimeout(timeoutSec * 1000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            DataInputStream in = new DataInputStream(s.getInputStream());

            send(out, 0, OP_OPTIONS, new byte[0]);
            expect(read(in), OP_SUPPORTED, "OPTIONS");

            ByteArrayOutputStream b = new ByteArrayOutputStream();
            DataOutputStream d = new DataOutputStream(b);
            d.writeShort(1);
            writeString(d, "CQL_VERSION");
            writeString(d, "3.0.0");
            send(out, 1, OP_STARTUP, b.toByteArray());
            Frame f = read(in);
            if (f.opcode == OP_AUTHENTICATE) throw new ServerError("server requires authentication");
            expect(f, OP_READY, "STARTUP");

            b = new ByteArrayOutputStream();
            d = new DataOutputStream(b);
            byte[] q = cql.getBytes(StandardCharsets.UTF_8);
            d.writeInt(q.length);
            d.write(q);
            d.writeShort(consistency);
            d.writeByte(0); // no flags
            send(out, 2, OP_QUERY, b.toByteArray());
            f = read(in);
            expect(f, OP_RESULT, "QUERY");
            printResult(ByteBuffer.wrap(f.body), countOnly);
            System.exit(0);
        } catch (ServerError e) {
            System.err.println("CqlPing " + host + ":" + port + ": server error: " + e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            System.err.println("CqlPing " + host + ":" + port + ": " + e);
            System.exit(1);
        }
    }

    private static int consistencyCode(String name) {
        String[] names = {"ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
                "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE"};
        for (int i = 0; i < names.length; i++) if (names[i].equalsIgnoreCase(name)) return i;
        throw new IllegalArgumentException("unknown consistency " + name);
    }

    private static final class Frame {
        int opcode;
        byte[] body;
    }

    private static void send(DataOutputStream out, int stream, int opcode, byte[] body) throws IOException {
        out.writeByte(VERSION);
        out.writeByte(0);
        out.writeShort(stream);
        out.writeByte(opcode);
        out.writeInt(body.length);
        out.write(body);
        out.flush();
    }

    private static Frame read(DataInputStream in) throws IOException {
        int version = in.readUnsignedByte();
        if ((version & 0x7f) != VERSION)
            throw new IOException("unexpected protocol version in response: 0x" + Integer.toHexString(version));
        in.readUnsignedByte(); // flags
        in.readShort(); // stream
        Frame f = new Frame();
        f.opcode = in.readUnsignedByte();
        int len = in.readInt();
        if (len < 0 || len > (256 << 20)) throw new IOException("bad frame length " + len);
        f.body = new byte[len];
        in.readFully(f.body);
        return f;
    }

    private static void expect(Frame f, int opcode, String what) throws IOException, ServerError {
        if (f.opcode == OP_ERROR) {
            ByteBuffer bb = ByteBuffer.wrap(f.body);
            int code = bb.getInt();
            throw new ServerError(String.format("0x%04x %s", code, readString(bb)));
        }
        if (f.opcode != opcode)
            throw new IOException(what + ": unexpected response opcode 0x" + Integer.toHexString(f.opcode));
    }

    private static void writeString(DataOutputStream d, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        d.writeShort(b.length);
        d.write(b);
    }

    private static String readString(ByteBuffer bb) {
        int n = bb.getShort() & 0xffff;
        byte[] b = new byte[n];
        bb.get(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private static byte[] readBytes(ByteBuffer bb) {
        int n = bb.getInt();
        if (n < 0) return null;
        byte[] b = new byte[n];
        bb.get(b);
        return b;
    }

    // Reads a column type [option]; returns the type id (nested types are skipped).
    private static int readType(ByteBuffer bb) {
        int id = bb.getShort() & 0xffff;
        switch (id) {
            case 0x0000: readString(bb); break; // custom
            case 0x0020: case 0x0022: readType(bb); break; // list, set
            case 0x0021: readType(bb); readType(bb); break; // map
            case 0x0030: { // udt
                readString(bb); readString(bb);
                int n = bb.getShort() & 0xffff;
                for (int i = 0; i < n; i++) { readString(bb); readType(bb); }
                break;
            }
            case 0x0031: { // tuple
                int n = bb.getShort() & 0xffff;
                for (int i = 0; i < n; i++) readType(bb);
                break;
            }
            default: break;
        }
        return id;
    }

    private static void printResult(ByteBuffer bb, boolean countOnly) throws IOException {
        int kind = bb.getInt();
        if (kind != 0x0002) { // not Rows: Void, SetKeyspace, SchemaChange...
            if (countOnly) System.out.println(0);
            return;
        }
        int flags = bb.getInt();
        int ncols = bb.getInt();
        if ((flags & 0x0002) != 0) readBytes(bb); // paging state
        List<Integer> types = new ArrayList<>();
        if ((flags & 0x0004) == 0) { // metadata present
            boolean global = (flags & 0x0001) != 0;
            if (global) { readString(bb); readString(bb); }
            for (int i = 0; i < ncols; i++) {
                if (!global) { readString(bb); readString(bb); }
                readString(bb); // name
                types.add(readType(bb));
            }
        }
        int nrows = bb.getInt();
        if (countOnly) {
            System.out.println(nrows);
            return;
        }
        StringBuilder sb = new StringBuilder();
        for (int r = 0; r < nrows; r++) {
            for (int c = 0; c < ncols; c++) {
                if (c > 0) sb.append('\t');
                sb.append(decode(c < types.size() ? types.get(c) : -1, readBytes(bb)));
            }
            sb.append('\n');
        }
        System.out.print(sb);
    }

    private static String decode(int type, byte[] v) throws IOException {
        if (v == null) return "null";
        ByteBuffer bb = ByteBuffer.wrap(v);
        switch (type) {
            case 0x0001: case 0x000D: return new String(v, StandardCharsets.UTF_8); // ascii, varchar
            case 0x0002: case 0x000B: return v.length == 8 ? Long.toString(bb.getLong()) : hex(v); // bigint, timestamp
            case 0x0004: return v.length == 1 ? Boolean.toString(v[0] != 0) : hex(v);
            case 0x0009: return v.length == 4 ? Integer.toString(bb.getInt()) : hex(v);
            case 0x000C: case 0x000F: // uuid, timeuuid
                return v.length == 16 ? new UUID(bb.getLong(), bb.getLong()).toString() : hex(v);
            case 0x0010: return InetAddress.getByAddress(v).getHostAddress();
            default: return hex(v);
        }
    }

    private static String hex(byte[] v) {
        StringBuilder sb = new StringBuilder("0x");
        for (byte x : v) sb.append(String.format(Locale.ROOT, "%02x", x));
        return sb.toString();
    }
}
